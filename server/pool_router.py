"""The server over an engine pool: every runnable model of the library is served by its id.

:class:`PoolRouter` is the :class:`~server.models.ModelRouter` of a server whose backend is
an :class:`~core.engine.pool.EnginePool` (the app's, ``hearth-cli serve``'s). The default
model (``default``, or the names of the model the pool has current) is routed exactly as
before — 503 while it loads; any other ``model`` is looked up in the pool's catalog (a file
name's id, a library name, a path) and answered by the pool's view bound to that model,
which loads it on this request if it is not resident (the pool decides what makes room).
A name the catalog does not know is the pool's :class:`UnknownModelError`, answered 404.
``/v1/models`` lists every runnable model with its state (loaded, loading, available) and
its requests in flight, so a client sees what answers at once and what would load first.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from core.engine.api import EngineBackend, LoadedModelInfo
from core.engine.config import EngineConfig
from core.engine.pool import EnginePool, PoolBackend, UnknownModelError
from server.errors import APIError
from server.models import DEFAULT_NAME, ModelRouter


def planned_info(model: str, config: EngineConfig) -> LoadedModelInfo:
    """What a request to a model not resident yet is planned against: the context and
    parallel sequences it will load with (the only fields the request planning reads)."""
    path = str(config.model_path or "")
    return LoadedModelInfo(model_name=model, path=path, architecture="", n_layer=0,
                           n_params=0, size_bytes=0, n_ctx=config.n_ctx,
                           n_threads=config.n_threads or 0, template="",
                           gpu_layers_requested=config.n_gpu_layers, gpu_layers=0,
                           device="", load_ms=0.0, n_seq_max=config.n_seq_max)


class PoolRouter(ModelRouter):
    """Routes a request's ``model`` to the pool's per-model backend."""

    def __init__(self, pool: EnginePool, backend: EngineBackend | None = None) -> None:
        super().__init__(backend if backend is not None else pool.backend_for())
        self.pool = pool
        self._views: dict[str, PoolBackend] = {}
        self._lock = threading.Lock()

    def _view(self, model: str) -> PoolBackend:
        """The pool's view for ``model`` (one per name: the catalog is scanned once)."""
        with self._lock:
            view = self._views.get(model)
            if view is None:
                try:
                    view = self.pool.backend_for(model)
                except UnknownModelError as err:
                    raise APIError(404, f"{err} GET /v1/models lists them.",
                                   code="model_not_found", param="model") from None
                self._views[model] = view
            return view

    def knows(self, model: str | None) -> bool:
        """The default model's names and names already looked up; any other name means a
        catalog scan (the library on disk), which the caller runs off the event loop."""
        if not model or model in self.served.names():
            return True
        with self._lock:
            return model in self._views

    def backend_for(self, model: str | None) -> tuple[EngineBackend, str, LoadedModelInfo]:
        if not model or model in self.served.names():
            backend, name, info = super().backend_for(model)
            return backend, model if model and model != DEFAULT_NAME else name, info
        view = self._view(model)
        assert view.config is not None  # a view made for a name is bound to its model
        return view, model, view.loaded or planned_info(model, view.config)

    def listing(self) -> list[dict[str, Any]]:
        current = self.served.info
        current_path = str(Path(current.path).resolve()) if current is not None else None
        return [{"id": row.id, "object": "model", "created": self.served.created,
                 "owned_by": "hearth", "state": row.state, "in_flight": row.in_flight,
                 "waiting": row.waiting, "default": row.path == current_path,
                 "quant": row.quant, "size_bytes": row.size_bytes}
                for row in self.pool.models()]

    def find(self, model_id: str) -> dict[str, Any] | None:
        rows = self.listing()
        for row in rows:
            if row["id"] == model_id:
                return row
        if model_id in self.served.names():
            return next((r for r in rows if r["default"]), None) or super().find(model_id)
        return None


def router_for(backend: Any) -> ModelRouter:
    """The router for a front end's backend: over the pool when it is one of the pool's
    views (or the pool itself), else the one-backend router."""
    pool = backend if isinstance(backend, EnginePool) else getattr(backend, "pool", None)
    if isinstance(pool, EnginePool):
        return PoolRouter(pool, backend if backend is not pool else None)
    return ModelRouter(backend)
