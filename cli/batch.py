"""``hearth-cli batch IN.jsonl -o OUT.jsonl``: an OpenAI batch file, run here, no server.

Each input line is ``{"custom_id", "method": "POST", "url", "body"}`` (the Batch API's
format; the endpoint comes from the lines' ``url``). Lines run through the same code as the
server's batches, several at once when the engine decodes several sequences; every answer
is stored in SQLite as it comes, so a run that is killed or interrupted resumes where it
stopped when the same command is run again (finished lines are never redone). OUT gets one
result per input line, in input order, successes and errors alike. The lines' ``model``
fields are ignored: the model is the one given with ``--model`` (default: bundled).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from cli.generate import add_model_arguments
from cli.serve import engine_config, resolve_parallel
from core.engine.process.client import EngineClient
from core.errors import ConfigError
from core.paths import hearth_home
from server.admission import Admission
from server.batch_lines import LineExecutor, output_lines, parse_input
from server.batch_runner import BatchRunner
from server.batch_store import BatchStore
from server.models import ModelRouter

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")



def register(subparsers: argparse._SubParsersAction) -> None:
    batch = subparsers.add_parser("batch", help="run an OpenAI batch file (JSONL) here")
    batch.add_argument("input", type=Path, metavar="IN.jsonl")
    batch.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.jsonl")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(batch)
    batch.set_defaults(func=run_batch, parallel=None, preset="top-p", temperature=0.8)


def _endpoint(data: bytes) -> str:
    import json

    for raw in data.decode("utf-8", "replace").splitlines():
        if raw.strip():
            try:
                url = json.loads(raw).get("url", "/v1/chat/completions")
            except (ValueError, AttributeError):
                return "/v1/chat/completions"  # parse_input reports the line
            return str(url)
    return "/v1/chat/completions"


def _load(args: argparse.Namespace) -> tuple[bytes, str, list[tuple[str, dict[str, Any]]]]:
    try:
        data = args.input.read_bytes()
    except OSError as err:
        raise ConfigError(f"Cannot read {args.input}: {err.strerror or err}.") from None
    endpoint = _endpoint(data)
    if endpoint not in ENDPOINTS:
        raise ConfigError(f"{args.input}: the endpoint {endpoint} is not one of "
                          f"{', '.join(ENDPOINTS)}.")
    lines, errors = parse_input(data, endpoint)
    if errors:
        where = f" (line {errors[0]['line']})" if errors[0].get("line") else ""
        raise ConfigError(f"{args.input}{where}: {errors[0]['message']}")
    return data, endpoint, [(cid, {k: v for k, v in body.items() if k != "model"})
                            for cid, body in lines]


def run_batch(args: argparse.Namespace) -> int:
    data, endpoint, lines = _load(args)
    resolve_parallel(args)
    output = args.output.resolve()
    job = hashlib.sha256(data + str(output).encode()).hexdigest()[:24]
    batch_id = f"batch_cli_{job}"
    store = BatchStore(hearth_home() / "batch-cli")
    try:
        if store.batch(batch_id) is None:
            file_id = f"file_cli_{job}"
            store.add_file(data, args.input.name, "batch", file_id)
            store.create_batch(file_id, endpoint, "24h", None, lines, [], batch_id)
        else:
            done = store.counts(batch_id)
            print(f"hearth-cli: resuming: {done['completed'] + done['failed']} of "
                  f"{done['total']} lines already answered", file=sys.stderr)
        counts = _run(args, store, batch_id)
        _write(output, output_lines(store.results(batch_id), None))
    finally:
        store.close()
    print(f"hearth-cli: {counts['completed']} answered, {counts['failed']} failed -> {output}",
          file=sys.stderr)
    return 0 if counts["failed"] == 0 else 1


def _run(args: argparse.Namespace, store: BatchStore, batch_id: str) -> dict[str, int]:
    batch = store.batch(batch_id)
    assert batch is not None
    if batch["status"] == "completed":
        return store.counts(batch_id)
    client = EngineClient()
    backend: Any = client
    try:
        loaded = client.load(engine_config(args))
        if loaded.fell_back:
            print(f"hearth-cli: {loaded.message}", file=sys.stderr)
        engine = max(1, loaded.n_seq_max)
        slots = min(args.parallel or engine, engine)
        router = ModelRouter(backend)
        admission = Admission(slots, max_queue=0)
        runner = BatchRunner(store=store, executor=LineExecutor(router, admission, None),
                             workers=slots, poll_s=0.05)
        runner.start()
        try:
            _watch(store, batch_id, not args.no_progress)
        finally:
            runner.stop()
    finally:
        client.close()
    return store.counts(batch_id)


def _watch(store: BatchStore, batch_id: str, show: bool) -> None:
    """Wait for the batch, with a progress bar on stderr (when it is a terminal or asked)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    counts = store.counts(batch_id)
    console = Console(file=sys.stderr)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=not show) as progress:
        task = progress.add_task("batch", total=counts["total"])
        while True:
            batch = store.batch(batch_id)
            assert batch is not None
            counts = batch["request_counts"]
            progress.update(task, completed=counts["completed"] + counts["failed"])
            if batch["status"] in ("completed", "cancelled", "failed"):
                return
            time.sleep(0.1)


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` whole (a crash never leaves half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"Cannot write {path}: {err.strerror or err}.") from None
