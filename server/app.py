"""The server as one object: router, admission, metrics, request log, files and batches,
and the ASGI app that uvicorn runs (:attr:`HearthServer.asgi`).

Around the FastAPI app sit two pure-ASGI layers: :class:`Observe` (the request log, the
request counter, and the last word on any exception) and :class:`~server.security.Guard`
(Host, Origin, API key, body limit). CORS headers come from Starlette's middleware, and
only when origins are listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from core.engine.api import LoadedModelInfo
from core.paths import hearth_home
from server.admission import Admission
from server.batch_runner import BatchRunner
from server.batch_store import BatchStore
from server.config import ServerConfig
from server.errors import error_body, install_handlers
from server.metrics import ServerMetrics
from server.models import ModelRouter
from server.request_log import RequestLog
from server.security import ASGIApp, Guard, Receive, Scope, Send
from server.token_count import TokenCounter

log = logging.getLogger("hearth.server")
_IDS = re.compile(r"/(file|batch)[-_][A-Za-z0-9_-]+")
SETTLE_S = 10.0


class HearthServer:
    """Everything one running server owns. ``router`` says which backend serves a model;
    the backend itself (the engine worker) belongs to the caller and outlives the server."""

    def __init__(self, router: ModelRouter, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        config.check()
        self.router = router
        self.admission = Admission(1, config.max_queue)
        self.metrics = ServerMetrics(self._gauges)
        self.log = RequestLog()
        self.tokens = TokenCounter()  # embeddings' usage
        self.data_dir = Path(config.data_dir) if config.data_dir else hearth_home() / "server"
        self.store = BatchStore(self.data_dir)
        self.batches = BatchRunner(self)
        router.on_loaded(self._on_loaded)
        self.app = _build_app(self)
        self.asgi: ASGIApp = Observe(Guard(self.app, config), self)

    def _on_loaded(self, info: LoadedModelInfo) -> None:
        """Admit as many requests at once as the engine decodes together (``parallel``
        may lower it): never more, since a backend may serve only that many callers."""
        engine = max(1, info.n_seq_max)
        self.admission.resize(min(self.config.parallel or engine, engine))

    def _gauges(self) -> dict[str, float]:
        return {"queue_depth": self.admission.waiting,
                "busy_sequences": self.admission.running,
                "slots": self.admission.slots,
                "requests_in_flight": self.log.in_flight,
                "model_loaded": 1 if self.router.ready else 0}

    def close(self) -> None:
        self.batches.stop()
        self.store.close()
        self.tokens.close()


def create_server(router: ModelRouter, config: ServerConfig | None = None) -> HearthServer:
    return HearthServer(router, config)


def _build_app(srv: HearthServer) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        srv.batches.start()
        try:
            yield
        finally:
            srv.batches.stop()

    app = FastAPI(title="Hearth local server", version="1.0",
                  description="OpenAI-compatible API over a local llama.cpp engine.",
                  lifespan=lifespan)
    app.state.hearth = srv
    install_handlers(app)

    from server import batch_routes, routes

    app.include_router(routes.router)
    app.include_router(batch_routes.router)
    if srv.config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=srv.config.cors_origins,
                           allow_methods=["*"], allow_headers=["*"])
    return app


class Observe:
    """The outermost layer: a request-log entry per request, the status counter, and a
    JSON 500 (never a traceback) for anything that escaped every handler."""

    def __init__(self, app: ASGIApp, srv: HearthServer) -> None:
        self.app, self.srv = app, srv

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        entry = self.srv.log.begin(scope.get("method", ""), scope.get("path", ""),
                                   f"{client[0]}")
        scope["hearth.entry"] = entry
        status, started = 500, False

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("server: unhandled error in %s %s", entry.method, entry.path)
            if not started:
                import json

                body = json.dumps(error_body(500, "The server failed unexpectedly; the "
                                             "reason is in Hearth's log.",
                                             "internal_error")).encode()
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.start", "status": 500,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
        finally:
            self.srv.metrics.count_request(_IDS.sub("/{id}", entry.path), status)
            await _settle(scope)
            self.srv.log.end(entry, status)


async def _settle(scope: Scope) -> None:
    """Wait until the engine has ended the work this request started (``hearth.runs``,
    set by the routes), so its log line has the finish ("cancelled" when the client
    left mid-stream) and the token counts. Bounded: an engine that never answers still
    gets its line, with what is known, after :data:`SETTLE_S`."""
    for run in scope.get("hearth.runs") or []:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(run.settled(), SETTLE_S)
