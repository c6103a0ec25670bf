"""Which backend serves a request's ``model``: the one function other issues will grow.

Today the server has one backend (the local worker, or whatever ``EngineBackend`` it was
given) and knows it by a few names: the loaded model's name, its file name and stem, and
``default``. A request for another name is a 404 listing what is served, never silently
answered by a different model. Several models and remote engines (an engine pool, an
OpenAI-compatible peer) plug in here by adding entries; nothing else in the server changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.engine.api import EngineBackend, LoadedModelInfo
from core.engine.config import EngineConfig
from core.errors import HearthError
from server.errors import APIError

log = logging.getLogger("hearth.server")
DEFAULT_NAME = "default"


@dataclass
class Served:
    """One backend and its state: ``loading`` while a load runs, ``error`` if it failed."""

    backend: EngineBackend
    loading: bool = False
    error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    last_info: LoadedModelInfo | None = None

    @property
    def info(self) -> LoadedModelInfo | None:
        """What the backend has loaded, or had: after a worker crash the local engine
        forgets its model until the next request restarts it, and that request must be
        let through (it is what restarts the engine), not refused as "no model"."""
        info = self.backend.loaded
        if info is not None:
            self.last_info = info
        elif self.error is not None:
            return None
        return info or self.last_info

    def names(self) -> list[str]:
        info = self.info
        if info is None:
            return [DEFAULT_NAME]
        path = Path(info.path)
        names = [info.model_name, path.name, path.stem, DEFAULT_NAME]
        return list(dict.fromkeys(n for n in names if n))

    @property
    def public_name(self) -> str:
        return self.names()[0]


class ModelRouter:
    """Maps model names to backends. ``load_async`` loads in a thread (the server answers
    /health with 503 meanwhile); ``on_loaded`` callbacks learn the new model (the server
    resizes its admission to the model's parallel sequences)."""

    def __init__(self, backend: EngineBackend) -> None:
        self.served = Served(backend)
        self._listeners: list[Callable[[LoadedModelInfo], None]] = []

    @property
    def ready(self) -> bool:
        return not self.served.loading and self.served.info is not None

    def on_loaded(self, callback: Callable[[LoadedModelInfo], None]) -> None:
        self._listeners.append(callback)
        if self.served.info is not None:
            callback(self.served.info)

    def load_async(self, config: EngineConfig) -> threading.Thread:
        """Load a model in the background; failures are kept for /health and the log."""
        served = self.served
        served.loading, served.error, served.last_info = True, None, None

        def job() -> None:
            try:
                info = served.backend.load(config)
            except HearthError as err:
                served.error = str(err)
                log.error("server: loading the model failed: %s", err)
            except Exception as err:  # reported, never a silent dead server
                served.error = f"Loading failed unexpectedly: {err}"
                log.exception("server: loading the model failed")
            else:
                for listener in self._listeners:
                    listener(info)
                log.info("server: model %s loaded (%s)", info.model_name, info.message)
            finally:
                served.loading = False

        thread = threading.Thread(target=job, name="server-load", daemon=True)
        thread.start()
        return thread

    def all(self) -> list[Served]:
        return [self.served]

    def listing(self) -> list[dict[str, Any]]:
        """``/v1/models``' entries: what is served (an engine pool lists its whole library)."""
        return [{"id": s.public_name, "object": "model", "created": s.created,
                 "owned_by": "hearth"} for s in self.all() if s.info is not None]

    def find(self, model_id: str) -> dict[str, Any] | None:
        """The ``/v1/models/{id}`` entry for any name the model is served by, or None."""
        for served in self.all():
            if served.info is not None and model_id in served.names():
                return {"id": served.public_name, "object": "model",
                        "created": served.created, "owned_by": "hearth"}
        return None

    def knows(self, model: str | None) -> bool:
        """Whether :meth:`backend_for` answers ``model`` from memory (no library to scan),
        so it may run on the event loop."""
        return True

    def backend_for(self, model: str | None) -> tuple[EngineBackend, str, LoadedModelInfo]:
        """The backend for a request's ``model``, the name to answer with and what it has
        loaded; an :class:`APIError` when no such model is served or it is not ready."""
        served = self.served
        if served.loading:
            raise APIError(503, "The model is still loading; retry in a few seconds.",
                           code="model_loading", retry_after_s=2)
        info = served.info
        if info is None:
            why = f" ({served.error})" if served.error else ""
            raise APIError(503, f"No model is loaded{why}.", code="model_not_loaded",
                           retry_after_s=5)
        names = served.names()
        if model and model not in names:
            raise APIError(404, f"The model '{model}' is not served here; use one of: "
                           f"{', '.join(names)} (GET /v1/models lists them).",
                           code="model_not_found", param="model")
        return served.backend, served.public_name, info
