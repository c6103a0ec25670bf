"""Remote engines: any OpenAI-compatible server (vLLM, llama-server, Ollama, another Hearth)
behind the same :class:`EngineBackend` as the local worker.

``RemoteBackend`` streams chat and completions over HTTP (``transport``: timeouts, retries,
cancel; ``wire``: the request body and the stream chunks; ``catalog``: the model list;
``errors``: one-line messages); ``RemoteRouter`` maps model names to backends for Hearth's
own server; ``connect`` makes a backend for an address, finding its key.
"""

from __future__ import annotations

import os

from core.engine.remote.backend import RemoteBackend
from core.engine.remote.catalog import RemoteModel
from core.engine.remote.errors import (
    EngineAuthError,
    EngineBusyError,
    EngineRejectedError,
    EngineUnreachableError,
    RemoteEngineError,
    StreamDroppedError,
)
from core.engine.remote.router import RemoteRouter, Route
from core.engine.remote.transport import RetryPolicy, Timeouts

KEY_ENV = "HEARTH_ENGINE_KEY"


def connect(base_url: str, model: str | None = None, key: str | None = None,
            timeouts: Timeouts | None = None, retry: RetryPolicy | None = None
            ) -> RemoteBackend:
    """A backend for the engine at ``base_url`` (not loaded yet). The key: ``key``, else
    ``$HEARTH_ENGINE_KEY``, else the one saved for that address in Settings › Engines
    (read when the first request needs it), else none."""
    from core.models.engines import EndpointStore

    key = key or os.environ.get(KEY_ENV) or None
    if key is not None:
        return RemoteBackend(base_url, model, key, timeouts=timeouts, retry=retry)
    store = EndpointStore()
    found: list[str | None] = []

    def saved() -> str | None:
        if not found:  # looked up once, on the first request's thread
            endpoint = store.find(base_url)
            found.append(store.key(endpoint) if endpoint is not None else None)
        return found[0]

    return RemoteBackend(base_url, model, saved, timeouts=timeouts, retry=retry)


__all__ = [
    "KEY_ENV",
    "EngineAuthError",
    "EngineBusyError",
    "EngineRejectedError",
    "EngineUnreachableError",
    "RemoteBackend",
    "RemoteEngineError",
    "RemoteModel",
    "RemoteRouter",
    "RetryPolicy",
    "Route",
    "StreamDroppedError",
    "Timeouts",
    "connect",
]
