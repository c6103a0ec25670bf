"""``hearth-cli serve``: the local OpenAI-compatible server in the foreground.

The server listens at once and loads the model in the background (``/health`` answers 503
until it is ready), so a client started beside it can poll instead of failing to connect.
Defaults let no one in: 127.0.0.1, no CORS; another host needs ``--api-key``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from cli.arguments import at_least
from cli.generate import add_model_arguments
from core.engine import EngineConfig
from core.engine.pool import EnginePool
from server import DEFAULT_PORT, ServerConfig, create_server
from server.config import DEFAULT_BODY_LIMIT
from server.pool_router import PoolRouter


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve the OpenAI API on this machine")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; "
                            "any other needs --api-key)")
    serve.add_argument("--port", type=at_least(0), default=DEFAULT_PORT,
                       help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--api-key", default=os.environ.get("HEARTH_API_KEY"),
                       help="require 'Authorization: Bearer KEY' (default: $HEARTH_API_KEY)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser pages from this origin (repeatable; default none)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="another Host name clients use to reach this server")
    serve.add_argument("--max-queue", type=at_least(0), default=64,
                       help="requests that may wait before new ones get 429 (default 64)")
    serve.add_argument("--max-body-mb", type=at_least(1),
                       default=DEFAULT_BODY_LIMIT // (1024 * 1024),
                       help="largest request body in MiB (default 32)")
    add_model_arguments(serve)
    # --parallel left out: SERVE_PARALLEL sequences (or the profile's); the sampling
    # defaults only let --profile run (each request brings its own sampling).
    serve.set_defaults(func=run_serve, parallel=None, preset="top-p", temperature=0.8)


SERVE_PARALLEL = 4  # requests decoded together by default (each gets n_ctx / 4 of the cache)


def resolve_parallel(args: argparse.Namespace, default: int = SERVE_PARALLEL) -> None:
    """Settle ``--parallel`` (and ``--profile``, which may choose it and the model)."""
    asked = args.parallel is not None
    if args.profile:
        from cli.plan import apply_profile

        if not asked:
            args.parallel = 1  # "not asked": the profile decides
        apply_profile(args)
    elif not asked:
        args.parallel = default


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(model_path=args.model, n_ctx=args.ctx, n_threads=args.threads,
                        n_gpu_layers=args.gpu_layers, n_seq_max=args.parallel)


def run_serve(args: argparse.Namespace) -> int:
    resolve_parallel(args)
    config = ServerConfig(host=args.host, port=args.port, api_key=args.api_key or None,
                          cors_origins=args.cors_origin, allowed_hosts=args.allowed_host,
                          parallel=args.parallel, max_queue=args.max_queue,
                          max_body_bytes=args.max_body_mb * 1024 * 1024)
    config.check()  # refuse an unsafe host before loading anything
    from server.run import serve_forever

    # An engine pool: the chosen model is the default one, and a request naming another
    # model of the library loads it beside it (or in its place when memory is short).
    pool = EnginePool(defaults=engine_config(args))
    try:
        router = PoolRouter(pool)
        srv = create_server(router, config)
        router.load_async(engine_config(args))
        key = " (API key required)" if config.api_key else ""
        print(f"hearth-cli: serving the OpenAI API at {config.base_url}{key}; loading the "
              "model (GET /health says when it is ready). Ctrl-C stops.", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C
            serve_forever(srv)
        print("hearth-cli: server stopped", file=sys.stderr)
    finally:
        pool.close()
    return 0
