"""One model of the pool as a plain ``EngineBackend``: what the GUI's bridge and the server
hold, unchanged, while the pool decides what is resident.

A view is bound to a load config, or follows the pool's current model (``None``: the GUI's
bridge, the server's default). Its ``load(config)`` makes that model resident without
unloading the others: the pool's current one (the GUI switching a chat's model), or the
view's own. ``cancel()`` stops only the requests that came
through this view (a chat's Stop never stops an API client's reply on the same model), and
``close()`` ends nothing but those: the pool and its workers are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from core.engine.api import Event, GenerationRequest, LoadedModelInfo
from core.engine.config import EngineConfig
from core.engine.pool.slots import Waiting
from core.engine.push import Sink, Submission


class RoutingPool(Protocol):
    """The part of :class:`~core.engine.pool.pool.EnginePool` a view uses."""

    @property
    def loaded(self) -> LoadedModelInfo | None: ...

    def config_for(self, model: Any) -> EngineConfig: ...

    def load(self, config: EngineConfig) -> LoadedModelInfo: ...

    def info_for(self, config: EngineConfig) -> LoadedModelInfo | None: ...

    def ensure(self, config: EngineConfig, keep_alive_s: float | None = None,
               owner: object | None = None) -> LoadedModelInfo: ...

    def generate(self, request: GenerationRequest, model: Any = None, *,
                 keep_alive_s: float | None = None,
                 on_wait: Callable[[Waiting], None] | None = None,
                 owner: object | None = None) -> Iterator[Event]: ...

    def submit(self, request: GenerationRequest, sink: Sink, model: Any = None, *,
               keep_alive_s: float | None = None,
               on_wait: Callable[[Waiting], None] | None = None,
               owner: object | None = None) -> Submission: ...

    def cancel(self, request_id: int | None = None, owner: object | None = None) -> None: ...

    def unload(self, model: Any = None, wait: bool = True) -> None: ...

    def in_flight_for(self, config: EngineConfig) -> int: ...

    def embed(self, texts: list[str], model: Any = None, model_path: str | None = None,
              pooling: str | None = None) -> Any: ...


class PoolBackend:
    """An ``EngineBackend`` bound to one model of ``pool``."""

    def __init__(self, pool: RoutingPool, config: EngineConfig | None, *,
                 keep_alive_s: float | None = None,
                 on_wait: Callable[[Waiting], None] | None = None) -> None:
        self.pool = pool
        self.config = config
        self.keep_alive_s = keep_alive_s
        self.on_wait = on_wait

    @property
    def loaded(self) -> LoadedModelInfo | None:
        if self.config is None:
            return self.pool.loaded
        return self.pool.info_for(self.config)

    @property
    def worker_pid(self) -> int | None:
        """The bound model's worker (telemetry follows it), None when not resident."""
        info = self.loaded
        return info.worker_pid or None if info is not None else None

    @property
    def in_flight(self) -> int:
        return self.pool.in_flight_for(self.config) if self.config is not None else 0

    def load(self, config: EngineConfig) -> LoadedModelInfo:
        """Make ``config``'s model resident (others stay loaded). A view that follows the
        pool's current model (the GUI's, the server's default) makes it the current one;
        a bound view re-binds to it."""
        if self.config is None:
            return self.pool.load(config)
        resolved = self.pool.config_for(config)
        info = self.pool.ensure(resolved, self.keep_alive_s, owner=self)
        self.config = resolved
        return info

    def embed(self, texts: list[str], model_path: str | None = None,
              pooling: str | None = None) -> Any:
        """Embeddings from the bound model's worker (the server's /v1/embeddings)."""
        return self.pool.embed(texts, self.config, model_path, pooling)

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        return self.pool.generate(request, self.config, keep_alive_s=self.keep_alive_s,
                                  on_wait=self.on_wait, owner=self)

    def submit(self, request: GenerationRequest, sink: Sink) -> Submission:
        """The request with its events pushed to ``sink`` (core/engine/push.py)."""
        return self.pool.submit(request, sink, self.config, keep_alive_s=self.keep_alive_s,
                                on_wait=self.on_wait, owner=self)

    def cancel(self, request_id: int | None = None) -> None:
        self.pool.cancel(request_id, owner=self)

    def unload(self) -> None:
        """Unload the bound model (for every user of it: the GUI's Unload button)."""
        if self.config is not None:
            self.pool.unload(self.config)

    def close(self) -> None:
        """Stop this view's requests; the shared pool stays up."""
        self.pool.cancel(owner=self)
