"""The pool's bookkeeping: one slot per resident worker, one ticket per waiting request.

A slot moves ``loading`` → ``ready`` → (``draining``) → ``unloading`` → gone. ``draining``
means it was chosen to make room while requests were still running on it: it takes no new
requests, and it leaves the moment the last one ends — a model with work in flight is
never killed. ``retired``: drained and idle, its process about to be handed to the model
that waits for the room (loading there frees the old model first). Tickets wait in
arrival order; a ticket is admitted the moment its model is ready, and the first ticket
that needs a load decides what is evicted for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from core.engine.api import Event, GenerationRequest, LoadedModelInfo
from core.engine.config import EngineConfig
from core.engine.pool.budget import Cost
from core.engine.pool.keys import PoolKey
from core.errors import HearthError

SlotState = Literal["loading", "ready", "draining", "retired", "unloading"]


class PoolWorker(Protocol):
    """What the pool needs of a worker: :class:`EngineClient` is one (the default)."""

    @property
    def worker_pid(self) -> int | None: ...

    def load(self, config: EngineConfig) -> LoadedModelInfo: ...

    def generate(self, request: GenerationRequest) -> Iterator[Event]: ...

    def cancel(self, request_id: int | None = None) -> None: ...

    def close(self) -> None: ...


WorkerFactory = Callable[[], PoolWorker]


@dataclass(eq=False)
class Slot:
    """One worker process and the model it holds (or is loading)."""

    key: PoolKey
    config: EngineConfig
    worker: PoolWorker
    cost: Cost
    keep_alive_s: float
    state: SlotState = "loading"
    info: LoadedModelInfo | None = None
    active: int = 0  # requests running on it, counted by the pool
    last_used: float = field(default_factory=time.monotonic)
    loaded_at: float = 0.0
    why_unloading: str = ""
    handoff: bool = False  # drained to make room: its process may load the next model
    turn_until: float = 0.0  # it keeps its turn while in use until then (its load time)

    @property
    def name(self) -> str:
        return self.key.file_name

    @property
    def idle_for(self) -> float:
        return time.monotonic() - self.last_used

    @property
    def expires_in(self) -> float | None:
        """Seconds of keep-alive left (None while busy or kept forever)."""
        if self.active or self.keep_alive_s == float("inf") or self.state != "ready":
            return None
        return max(0.0, self.keep_alive_s - self.idle_for)


@dataclass
class Waiting:
    """What a waiting request is told (``on_wait``), each time it changes: its place among
    the waiting requests (1 = next) and what it waits for."""

    position: int
    model: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"event": "waiting", **asdict(self)}


@dataclass(eq=False)
class Ticket:
    """A request that waits for its model to be loaded (or to come back)."""

    key: PoolKey
    config: EngineConfig
    keep_alive_s: float | None
    on_wait: Callable[[Waiting], None] | None = None
    owner: object | None = None  # the view it came through (its cancel reaches it)
    slot: Slot | None = None  # set when admitted
    error: HearthError | None = None
    cancelled: bool = False
    reason: str = "waiting for its turn"
    told: tuple[int, str] | None = None  # the last (position, reason) given to on_wait
    since: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class ModelStatus:
    """One row of :meth:`EnginePool.models`: a runnable model and what the pool does with
    it. ``state``: "loaded", "loading", "unloading" or "available"; memory is the
    prediction the budget counts, and the worker's measured RSS when it runs."""

    id: str
    name: str
    path: str
    source: str
    size_bytes: int
    quant: str | None
    state: str = "available"
    in_flight: int = 0
    waiting: int = 0
    n_ctx: int = 0
    n_seq_max: int = 0
    host_bytes: int = 0
    vram_bytes: int = 0
    rss_bytes: int | None = None
    worker_pid: int | None = None
    expires_in_s: float | None = None
    turn_left_s: float = 0.0  # while in use, it keeps its turn this long (its load time)
    placement: str = ""

    @property
    def loaded(self) -> bool:
        return self.state == "loaded"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
