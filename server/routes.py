"""The OpenAI endpoints (chat, completions, embeddings, models) and /health, /metrics.

A handler resolves the model, plans the engine requests, admits them (429 when the queue is
full) and either collects the results or streams them. Until the first event arrives the
response has not started, so an error that comes first (a refused grammar, a prompt too
long) is still a proper status code; a client that disconnects meanwhile is noticed and
its work cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from core.engine.api import DoneEvent, ErrorEvent, Event, GenerationRequest, Lane, LoadedModelInfo
from server import documents
from server.admission import QueueFull
from server.errors import APIError
from server.execution import CANCELLED, ChoiceResult, Run, watch_disconnect
from server.request_log import LogEntry
from server.responses import chat_completion, completion, embedding_response, error_of
from server.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from server.streaming import chat_stream, completion_stream
from server.translate import plan_chat, plan_completion

router = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_EMBED_INPUTS = 2048


def _srv(request: Request) -> Any:
    return request.app.state.hearth


def _entry(request: Request) -> LogEntry | None:
    return request.scope.get("hearth.entry")


async def resolve(srv: Any, model: str | None) -> tuple[Any, str, LoadedModelInfo]:
    """``srv.router.backend_for(model)``; a name the router must look up first (an engine
    pool scans its library for it) is looked up in a thread, so the event loop keeps
    serving every other request meanwhile."""
    if srv.router.knows(model):
        return srv.router.backend_for(model)
    return await asyncio.to_thread(srv.router.backend_for, model)


def start_run(srv: Any, request: Request, backend: Any, requests: list[GenerationRequest],
              model: str) -> Run:
    """Admit and start the choices; 429 when there is no room to wait."""
    entry = _entry(request)
    if entry is not None:
        entry.model = model

    lock = threading.Lock()

    def on_final(final: DoneEvent | ErrorEvent, t_end_ns: int, produced: int) -> None:
        m = final.metrics if isinstance(final, DoneEvent) else None
        if m is not None:
            srv.metrics.observe_generation(m)
        else:  # cancelled before the engine's last word, or failed: what it had produced
            srv.metrics.count_completion_tokens(produced)
        if entry is None:
            return
        with lock:
            entry.prompt_tokens = max(entry.prompt_tokens, m.prompt_tokens if m else 0)
            entry.completion_tokens += m.decode_tokens if m else produced
            finish = final.finish_reason if isinstance(final, DoneEvent) else \
                ("cancelled" if final.kind == CANCELLED else "error")
            entry.finish = finish if not entry.finish else f"{entry.finish},{finish}"
            entry.t_end_ns = max(entry.t_end_ns, t_end_ns)

    try:
        run = Run.start(backend, srv.admission, requests, on_final)
    except QueueFull as full:
        raise APIError(429, str(full) + " Retry later.", code="queue_full",
                       retry_after_s=full.retry_after_s) from None
    request.scope.setdefault("hearth.runs", []).append(run)  # the log line waits for it
    return run


async def _until(request: Request, run: Run, work: Any) -> Any:
    """Await ``work`` while watching for the client leaving (which cancels ``run``)."""
    watcher = asyncio.create_task(watch_disconnect(request.receive, run))
    try:
        return await work
    except asyncio.CancelledError:
        run.cancel()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


def _raise_first_error(srv: Any, results: list[ChoiceResult]) -> None:
    for result in results:
        if result.error is not None:
            raise error_of(result.error, srv.admission.retry_after_s())


async def _first(srv: Any, request: Request, run: Run) -> tuple[int, Event]:
    first = await _until(request, run, run.next())
    if isinstance(first[1], ErrorEvent):
        run.cancel()
        raise error_of(first[1], srv.admission.retry_after_s())
    return first


@router.post("/v1/chat/completions", tags=["chat"])
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    srv = _srv(request)
    backend, model, info = await resolve(srv, body.model)
    # Hearth's extension: "hearth": {"collections": [...]} answers from documents
    docs = await documents.prepare(request.app.state, body, info, backend,
                                   srv.config.max_tokens_cap)
    body = docs.body if docs is not None else body
    plan = plan_chat(body, info, _lane(request), srv.config.max_tokens_cap)
    run = start_run(srv, request, backend, plan.requests, model)
    if body.stream:
        first = await _first(srv, request, run)
        usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = chat_stream(run, first, model, plan.tools, usage, body.logprobs)
        if docs is not None:
            stream = documents.with_sources(stream, docs, run.results, model)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    results = await _until(request, run, run.collect())
    _raise_first_error(srv, results)
    reply = chat_completion(results, model, plan.tools, body.logprobs)
    if docs is not None:
        reply[documents.FIELD] = docs.extension(results)
    return reply


@router.post("/v1/completions", tags=["completions"])
async def completions(body: CompletionRequest, request: Request) -> Any:
    srv = _srv(request)
    backend, model, info = await resolve(srv, body.model)
    plan = plan_completion(body, info, _lane(request), srv.config.max_tokens_cap)
    run = start_run(srv, request, backend, plan.requests, model)
    want_logprobs = body.logprobs is not None
    if body.stream:
        first = await _first(srv, request, run)
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(completion_stream(run, first, model, plan.echo, body.n, usage,
                                                   want_logprobs),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    results = await _until(request, run, run.collect())
    _raise_first_error(srv, results)
    return completion(results, model, plan.echo, want_logprobs, body.n)


def _lane(request: Request) -> Lane:
    return "bulk" if request.scope.get("hearth.lane") == "bulk" else "interactive"


@router.post("/v1/embeddings", tags=["embeddings"])
async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
    srv = _srv(request)
    backend, model, info = await resolve(srv, body.model)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > MAX_EMBED_INPUTS:
        raise APIError(400, f"'input' needs 1 to {MAX_EMBED_INPUTS} texts.",
                       code="invalid_request", param="input")
    vectors, n_tokens = await embed(srv, backend, texts, _lane(request), info.path)
    return embedding_response(vectors, body, model, n_tokens)


async def embed(srv: Any, backend: Any, texts: list[str], lane: Lane,
                path: str) -> tuple[np.ndarray, int]:
    """Embed through the backend under an admission slot (embedding shares the engine);
    also the tokens embedded, counted with the model's tokenizer (``usage``)."""
    embed_fn = getattr(backend, "embed", None)
    if embed_fn is None:
        raise APIError(400, "This model's engine does not compute embeddings.",
                       code="embeddings_not_supported", param="model")
    try:
        ticket = srv.admission.enter(lane)
    except QueueFull as full:
        raise APIError(429, str(full), code="queue_full",
                       retry_after_s=full.retry_after_s) from None
    never = threading.Event()
    try:
        await asyncio.to_thread(srv.admission.wait, ticket, never)

        def work() -> tuple[np.ndarray, int]:
            vectors = embed_fn(texts)
            return vectors, srv.tokens.embedding_inputs(path, texts) or 0

        return await asyncio.to_thread(work)
    except APIError:
        raise
    except Exception as err:  # HearthError from the engine: the user's message
        kind = type(err).__name__
        raise error_of(ErrorEvent(str(err), kind), srv.admission.retry_after_s()) from None
    finally:
        srv.admission.release(ticket)


@router.get("/v1/models", tags=["models"])
async def list_models(request: Request) -> Any:
    data = await asyncio.to_thread(_srv(request).router.listing)  # a pool scans its library
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id}", tags=["models"])
async def get_model(model_id: str, request: Request) -> Any:
    found = await asyncio.to_thread(_srv(request).router.find, model_id)
    if found is not None:
        return found
    raise APIError(404, f"The model '{model_id}' is not served here.", code="model_not_found",
                   param="model")


@router.get("/health", tags=["server"])
async def health(request: Request) -> Any:
    srv = _srv(request)
    served = srv.router.served
    if served.loading:
        return JSONResponse({"status": "loading"}, status_code=503,
                            headers={"Retry-After": "2"})
    if served.info is None:
        return JSONResponse({"status": "no_model", "error": served.error}, status_code=503)
    return {"status": "ok", "model": served.public_name,
            "slots": srv.admission.slots, "busy": srv.admission.running,
            "queue": srv.admission.waiting}


@router.get("/metrics", tags=["server"], response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_srv(request).metrics.exposition(),
                             media_type="text/plain; version=0.0.4")
