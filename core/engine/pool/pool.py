"""Several models at once: one worker process per resident model, under a memory budget.

The shape is Ollama's scheduler (``server/sched.go``: a map of loaded runners with reference
counts, keep-alive timers, least-recently-used eviction that waits for a busy runner to go
idle), with the faults users report there designed out:

* requests to a resident model never queue behind a load or an eviction (ollama #5724):
  admission is a dictionary look-up under one lock, and loads and unloads run on their own
  threads, outside it;
* a model with requests in flight is never killed to make room (llama.cpp router #21678):
  it is marked *draining*, takes no new requests, and closes when its last one ends;
* no reload for a request that asks for less than what is loaded (ollama #12783);
* one worker per key, replaced in place on a reload, so a model never shows twice nor
  holds its memory twice (LM Studio #634).

Fair turns (the seed's time-slicing): a request whose model cannot be resident now waits in
arrival order. The first such request decides what makes room — idle models first, least
recently used first, then busy ones are drained — and from then on new requests for a
draining model queue behind it. Its model loads as soon as the room is there, every queued
request for it is admitted together, and the next waiting model gets its turn the same way.
No request fails because of another: a waiting request only ends by its own model failing
to load, its cancellation, or the pool closing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.engine.api import (
    DoneEvent,
    ErrorEvent,
    Event,
    GenerationRequest,
    LoadedModelInfo,
    TextEvent,
)
from core.engine.config import EngineConfig
from core.engine.metrics import RequestMetrics
from core.engine.pool.budget import FreeMemoryBudget, MemoryBudget, explicit
from core.engine.pool.keys import PoolKey, key_of, resolved_path
from core.engine.pool.scheduler import DEFAULT_KEEP_ALIVE_S, PoolEvent, PoolScheduler, Running
from core.engine.pool.slots import Slot, Waiting
from core.engine.pool.view import PoolBackend
from core.engine.process.client import EventStream
from core.engine.process.death import not_loaded
from core.engine.push import Final, Sink, Submission, call_sink, submit
from core.errors import EngineError, HearthError

ModelRef = str | Path | EngineConfig | None
__all__ = ["DEFAULT_KEEP_ALIVE_S", "EnginePool", "ModelRef", "PoolEvent"]


class PoolSubmission:
    """The pool's :class:`~core.engine.push.Submission`: its model's turn, then the worker's."""

    def __init__(self, start: Callable[[], Final], stop: Callable[[], None]) -> None:
        self.run, self.cancel = start, stop


class EnginePool(PoolScheduler):
    """An :class:`~core.engine.api.EngineBackend` over several workers; also routes by
    model (``generate(request, model=...)``, :meth:`backend_for`). Thread-safe. Options:
    ``budget`` (bytes, or a source; default the planner's from free memory),
    ``keep_alive_s`` (idle time before a model unloads), ``worker_factory`` (a new
    worker: :class:`EngineClient` by default), ``defaults`` (the load config a model
    named by id gets), ``catalog`` (where ids are looked up)."""

    # -- routing ------------------------------------------------------------------------
    def config_for(self, model: ModelRef) -> EngineConfig:
        """The load config a request for ``model`` means: an id, name or path resolved
        through the catalog with the pool's defaults, or a config as given. Raises
        :class:`~core.engine.pool.catalog.UnknownModelError` for an unknown model."""
        if model is None:
            if self._current is None:
                raise EngineError("No model is loaded.")
            return self._current
        if isinstance(model, EngineConfig):
            config = model
        else:
            path = model if isinstance(model, Path) else self.catalog.resolve(model)
            config = replace(self.defaults, model_path=Path(path))
        if config.model_path is None:
            from core.models.bundled import default_model_path

            config = replace(config, model_path=default_model_path())
        return config

    def backend_for(self, model: ModelRef = None, *, keep_alive_s: float | None = None,
                    on_wait: Callable[[Waiting], None] | None = None) -> PoolBackend:
        """An ``EngineBackend`` bound to one model (resolved now: an unknown one raises
        :class:`UnknownModelError`); ``None`` follows the pool's current model."""
        config = self.config_for(model) if model is not None else None
        return PoolBackend(self, config, keep_alive_s=keep_alive_s, on_wait=on_wait)

    def set_budget(self, budget: MemoryBudget | None) -> None:
        """Change the budget (bytes; None: the planner's from free memory). It applies to
        the next load: nothing resident is unloaded by the change itself."""
        with self._cond:
            self._budget_source = explicit(budget) if budget is not None else FreeMemoryBudget()
            self._budget = None

    def loads(self, model: Path | str | None = None) -> int:
        """How many loads the pool has done (of ``model``'s file, if given)."""
        path = resolved_path(Path(model)) if model is not None else None
        return sum(1 for e in self.history if e.kind == "load" and path in (None, e.path))

    # -- EngineBackend ------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModelInfo | None:
        """The current model's (the last :meth:`load`'s) info while it is resident."""
        return self.info_for(self._current) if self._current is not None else None

    @property
    def worker_pid(self) -> int | None:
        info = self.loaded
        return info.worker_pid or None if info is not None else None

    def info_for(self, config: EngineConfig) -> LoadedModelInfo | None:
        with self._cond:
            slot = self._slots.get(key_of(config))
            return slot.info if slot is not None and slot.state != "loading" else None

    def load(self, config: EngineConfig) -> LoadedModelInfo:
        """Make ``config``'s model the current one (what a request naming no model gets)
        and resident, waiting for room if needed; other resident models stay. The current
        model is kept loaded (no keep-alive expiry; it can still make way for another
        when the budget needs it), the previous one goes back to the default keep-alive.
        Raises :class:`HearthError` if it cannot load."""
        config = self.config_for(config)
        info = self.ensure(config)
        with self._cond:
            old, self._current = self._current, config
            previous = self._slots.get(key_of(old)) if old is not None else None
            if previous is not None and previous.keep_alive_s == float("inf"):
                previous.keep_alive_s = self.keep_alive_s
            slot = self._slots.get(key_of(config))
            if slot is not None:
                slot.keep_alive_s = float("inf")
        return info

    def ensure(self, config: EngineConfig, keep_alive_s: float | None = None,
               owner: object | None = None) -> LoadedModelInfo:
        """Load ``config``'s model if it is not resident; return its info."""
        slot = self._acquire(self.config_for(config), keep_alive_s, None, owner)
        if slot is None:
            raise EngineError("The load was cancelled.")
        try:
            assert slot.info is not None
            return slot.info
        finally:
            self._release(slot)

    def generate(self, request: GenerationRequest, model: ModelRef = None, *,
                 keep_alive_s: float | None = None,
                 on_wait: Callable[[Waiting], None] | None = None,
                 owner: object | None = None) -> EventStream:
        """Stream ``request`` on ``model`` (default: the current one), loading it first
        if needed. ``keep_alive_s`` overrides the model's idle time before unloading from
        now on (0: unload when idle; ``inf``: never); ``on_wait`` hears the request's
        place while it waits. Errors are events, as for every backend. The stream's
        ``cancel()`` stops this request alone, waiting or running, at once."""
        run = Running(owner=owner)
        events = self._events(request, model, keep_alive_s, on_wait, run)
        return EventStream(0, events, lambda _id: self._stop(run))

    def submit(self, request: GenerationRequest, sink: Sink, model: ModelRef = None, *,
               keep_alive_s: float | None = None,
               on_wait: Callable[[Waiting], None] | None = None,
               owner: object | None = None) -> Submission:
        """:meth:`generate` with the events pushed to ``sink`` from the worker's reader
        thread (core/engine/push.py); ``run()`` waits for the model's turn, then for the
        request's final event. ``cancel()`` stops it, waiting or running, at once."""
        run = Running(owner=owner)
        return PoolSubmission(lambda: self._pushed(request, model, keep_alive_s, on_wait,
                                                   run, sink), lambda: self._stop(run))

    def _pushed(self, request: GenerationRequest, model: ModelRef,
                keep_alive_s: float | None, on_wait: Callable[[Waiting], None] | None,
                run: Running, sink: Sink) -> Final:
        with self._cond:
            self._running.append(run)
        try:
            slot = self._slot_for(model, keep_alive_s, on_wait, run)
            if not isinstance(slot, Slot):
                call_sink(sink, slot)
                return slot
            try:  # the worker's submission keeps the one-final-event promise itself
                inner = submit(slot.worker, request, sink)
                with self._cond:
                    run.slot, run.stream = slot, inner
                if run.cancelled:
                    self._stop(run)
                return inner.run()
            finally:
                self._release(slot)
        finally:
            with self._cond:
                self._running.remove(run)

    def _slot_for(self, model: ModelRef, keep_alive_s: float | None,
                  on_wait: Callable[[Waiting], None] | None, run: Running) -> Slot | Final:
        """The request's slot once its model is resident, or the event it ends with."""
        try:
            slot = (None if run.cancelled else self._acquire(
                self.config_for(model), keep_alive_s, on_wait, run.owner, run))
        except HearthError as err:
            return not_loaded(err)
        return slot if slot is not None else DoneEvent("cancelled", "", RequestMetrics())

    def _events(self, request: GenerationRequest, model: ModelRef,
                keep_alive_s: float | None, on_wait: Callable[[Waiting], None] | None,
                run: Running) -> Iterator[Event]:
        with self._cond:
            self._running.append(run)
        try:
            slot = self._slot_for(model, keep_alive_s, on_wait, run)
            if isinstance(slot, Slot):
                yield from self._stream(request, slot, run)
            else:
                yield slot
        finally:
            with self._cond:
                self._running.remove(run)

    def _stream(self, request: GenerationRequest, slot: Slot, run: Running
                ) -> Iterator[Event]:
        text: list[str] = []
        inner = slot.worker.generate(request)
        with self._cond:
            run.slot, run.stream = slot, inner
        if run.cancelled:
            self._stop(run)
        try:
            for event in inner:
                if isinstance(event, TextEvent):
                    text.append(event.text)
                yield event
                if isinstance(event, DoneEvent | ErrorEvent):
                    return
                if run.cancelled and not callable(getattr(inner, "cancel", None)):
                    yield DoneEvent("cancelled", "".join(text), RequestMetrics())
                    return
        finally:
            getattr(inner, "close", lambda: None)()  # an early close cancels it there
            self._release(slot)

    def _stop(self, run: Running) -> None:
        """Cancel one request: out of the queue if it waits, else by its id in its
        worker (the worker answers with a DoneEvent ``cancelled``)."""
        with self._cond:
            run.cancelled = True
            if run.ticket is not None:
                run.ticket.cancelled = True
            stream = run.stream
            self._schedule()
            self._cond.notify_all()
        stop = getattr(stream, "cancel", None)
        if callable(stop):
            stop()

    def embed(self, texts: list[str], model: ModelRef = None, model_path: str | None = None,
              pooling: str | None = None) -> Any:
        """Embeddings computed in ``model``'s worker (loaded first if needed)."""
        slot = self._acquire(self.config_for(model), None, None, None)
        if slot is None:
            raise EngineError("The request was cancelled.")
        try:
            embed = getattr(slot.worker, "embed", None)
            if embed is None:
                raise EngineError("This engine does not compute embeddings.")
            return embed(texts, model_path, pooling)
        finally:
            self._release(slot)

    def cancel(self, request_id: int | None = None, owner: object | None = None) -> None:
        """Stop requests at once, waiting or running: ``owner`` (a view) limits it to
        that view's requests; with none, every request of the pool."""
        with self._cond:
            for ticket in self._queue:
                if owner is None or ticket.owner is owner:
                    ticket.cancelled = True
            runs = [r for r in self._running if owner is None or r.owner is owner]
        for run in runs:
            self._stop(run)

    def unload(self, model: ModelRef | PoolKey = None, wait: bool = True) -> None:
        """Unload one model (every worker of that file) or, with none, all of them; a model
        with requests in flight goes when they end. ``wait``: return once it is gone."""
        with self._cond:
            if model is None:
                targets = list(self._slots.values())
                self._current = None
            else:
                path = model.path if isinstance(model, PoolKey) else key_of(
                    self.config_for(model)).path
                targets = [s for s in self._slots.values() if s.key.path == path]
            for slot in targets:
                self._retire(slot, "unloaded on request")
            while wait and any(self._slots.get(s.key) is s for s in targets):
                self._cond.wait(0.5)

    def close(self) -> None:
        """End every worker and every waiting request; the pool cannot be used after."""
        with self._cond:
            self._closed = True
            for ticket in self._queue:
                ticket.error = EngineError("Hearth is closing; the request was not run.")
            self._queue.clear()
            slots = list(self._slots.values())
            self._slots.clear()
            self._cond.notify_all()
        for slot in slots:
            with contextlib.suppress(Exception):
                slot.worker.close()
        self._reaper.join(timeout=2)

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

