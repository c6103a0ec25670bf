"""The pool's scheduler: admission, fair turns, eviction, loads, unloads and keep-alive.

Everything here runs under the pool's one lock (a :class:`threading.Condition`) except the
loads and unloads themselves, which run on their own threads: a request for a resident
model is admitted by a dictionary look-up and never waits for a load or an eviction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.engine.api import LoadedModelInfo
from core.engine.config import EngineConfig
from core.engine.pool.budget import (
    BudgetSource,
    Cost,
    FreeMemoryBudget,
    MemoryBudget,
    explicit,
    predict_cost,
)
from core.engine.pool.catalog import Catalog
from core.engine.pool.keys import PoolKey, covers, key_of, merged
from core.engine.pool.slots import PoolWorker, Slot, Ticket, Waiting, WorkerFactory
from core.engine.pool.status import PoolStatus
from core.errors import EngineError, HearthError

log = logging.getLogger("hearth.pool")
DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's default: five minutes idle, then the memory goes back
BUDGET_TTL_S = 1.0  # a probed budget is reused this long (admission never waits on NVML)
# A model keeps its turn for as long as its load took, while it is in use: a request in
# flight, or one answered less than TURN_GRACE_S ago (a client about to send the next).
# So two busy clients under a one-model budget take turns of several requests, and loads
# take at most half the time; a model nobody is using leaves at once. The grace holds only
# against a request that was already waiting when the model's last one ended: one that
# came after it (one client alternating models, a request at a time) would wait for a
# next request that its own client is not sending.
TURN_GRACE_S = 0.1


@dataclass
class PoolEvent:
    """A load or an unload, for the log, the tests and the benchmark."""

    kind: str  # "load" | "unload"
    path: str
    ms: float
    reason: str
    n_ctx: int


@dataclass(eq=False)
class Running:
    """One request through the pool: waiting (``ticket``), then on a slot (``stream``)."""

    owner: object | None = None
    slot: Slot | None = None
    ticket: Ticket | None = None
    stream: Any = None
    cancelled: bool = False


def _default_factory() -> WorkerFactory:
    from core.engine.process.client import EngineClient

    return EngineClient



class PoolScheduler(PoolStatus):
    """The state and the machinery; :class:`~core.engine.pool.pool.EnginePool` is the API."""

    def __init__(self, *, budget: MemoryBudget | BudgetSource | None = None,
                 keep_alive_s: float = DEFAULT_KEEP_ALIVE_S,
                 worker_factory: WorkerFactory | None = None,
                 defaults: EngineConfig | None = None, catalog: Catalog | None = None,
                 cost: Callable[[EngineConfig, bool, int | None], Cost] = predict_cost
                 ) -> None:
        self._budget_source = (explicit(budget) if isinstance(budget, MemoryBudget)
                               else budget or FreeMemoryBudget())
        self._budget: tuple[float, MemoryBudget] | None = None
        self.keep_alive_s = keep_alive_s
        self._factory = worker_factory or _default_factory()
        self.defaults = defaults or EngineConfig()
        self.catalog = catalog or Catalog()
        self._cost = cost
        self._cond = threading.Condition()
        self._slots: dict[PoolKey, Slot] = {}
        self._queue: list[Ticket] = []
        self._running: list[Running] = []
        self._current: EngineConfig | None = None
        self._last_info: dict[PoolKey, LoadedModelInfo] = {}
        self.history: list[PoolEvent] = []
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="pool-keep-alive", daemon=True)
        self._reaper.start()

    # -- admission ----------------------------------------------------------------------
    def _acquire(self, config: EngineConfig, keep_alive_s: float | None,
                 on_wait: Callable[[Waiting], None] | None, owner: object | None,
                 run: Running | None = None) -> Slot | None:
        """A ready slot for ``config`` with this request counted on it; None if the
        request was cancelled while it waited. Raises the load's error."""
        key = key_of(config)
        with self._cond:
            if self._closed:
                raise EngineError("The engine pool is closed.")
            ticket = Ticket(key, config, keep_alive_s, on_wait, owner)
            slot = self._slots.get(key)
            if slot is not None and slot.state == "ready" and covers(slot.config, config):
                self._admit(ticket, slot)
                return slot
            self._queue.append(ticket)
            if run is not None:
                run.ticket = ticket
            self._schedule()
            self._cond.notify_all()  # the keep-alive thread re-times its wake for this turn
            while True:
                if ticket.slot is not None:
                    return ticket.slot
                if ticket.error is not None:
                    raise ticket.error
                if ticket.cancelled:
                    return None
                self._tell(ticket)
                self._cond.wait(0.5)

    def _admit(self, ticket: Ticket, slot: Slot) -> None:
        slot.active += 1
        if ticket.keep_alive_s is not None:
            slot.keep_alive_s = ticket.keep_alive_s if ticket.keep_alive_s >= 0 else float("inf")
        ticket.slot = slot
        if ticket in self._queue:
            self._queue.remove(ticket)

    def _tell(self, ticket: Ticket) -> None:
        """Give ``on_wait`` the ticket's place when it changed (outside the lock)."""
        if ticket.on_wait is None or ticket not in self._queue:
            return
        told = (self._queue.index(ticket) + 1, ticket.reason)
        if told == ticket.told:
            return
        ticket.told = told
        self._cond.release()
        try:
            ticket.on_wait(Waiting(told[0], ticket.key.file_name, told[1]))
        except Exception:  # a front end's callback must not break the pool
            log.exception("pool: on_wait callback failed")
        finally:
            self._cond.acquire()

    def _release(self, slot: Slot) -> None:
        with self._cond:
            slot.active -= 1
            slot.last_used = time.monotonic()
            if slot.active == 0 and slot.state == "draining":
                if slot.handoff and self._queue:
                    slot.state = "retired"  # idle now: its process may serve the next model
                else:
                    self._start_unload(slot, slot.why_unloading)
            elif slot.active == 0 and slot.state == "ready" and slot.keep_alive_s <= 0:
                self._start_unload(slot, "keep-alive 0")
            self._schedule()
            self._cond.notify_all()

    # -- scheduling (the lock is held) -------------------------------------------------
    def _schedule(self) -> None:
        """Admit what can run, then let the first waiting request make its model
        resident: start its load if it fits, else choose what leaves for it."""
        self._queue = [t for t in self._queue if not t.cancelled and t.error is None]
        for ticket in list(self._queue):
            slot = self._slots.get(ticket.key)
            if slot is not None and slot.state == "ready" and covers(slot.config, ticket.config):
                self._admit(ticket, slot)
        if not self._queue or self._closed:
            for slot in self._slots.values():  # nobody waits for their room after all
                if slot.state == "retired":
                    slot.state, slot.handoff = "ready", False
            self._cond.notify_all()
            return
        head = self._queue[0]
        for other in self._queue[1:]:
            other.reason = f"after a request for {head.key.file_name}"
        slot = self._slots.get(head.key)
        if slot is not None:
            if slot.state in ("loading", "unloading"):
                head.reason = f"{slot.name} is {slot.state}"
                return
            if covers(slot.config, head.config):  # retired for someone who left: keep it
                slot.state, slot.why_unloading, slot.handoff = "ready", "", False
                self._schedule()
                return
            head.config = merged(slot.config, head.config)  # the reload's size
            if slot.active:
                self._retire(slot, f"reload with n_ctx {head.config.n_ctx}")
                slot.handoff = True  # drained, the same process loads the larger context
                head.reason = f"{slot.name} reloads with a larger context"
                return
        loading = [s for s in self._slots.values() if s.state == "loading"]
        if loading:
            head.reason = f"{loading[0].name} is loading"
            return
        self._place(head, head.config, slot)

    def _place(self, head: Ticket, target: EngineConfig, replacing: Slot | None) -> None:
        """Load ``target`` for ``head``: at once if it fits; else by handing an idle
        victim's worker process to it (the old model is freed in that process before the
        new one loads: no process start, no second copy in memory); else after busy
        victims drain. ``replacing`` is the head's own worker, when it reloads larger."""
        budget = self._budget_now()
        try:
            cost = self._cost(target, budget.gpu, None)
        except HearthError as err:
            self._fail(head.key, err)
            return
        rest = [s for s in self._slots.values() if s is not replacing]
        used = sum((s.cost for s in rest), Cost())
        if replacing is None and (budget.fits(used + cost) or not rest):
            if not budget.fits(cost):
                log.warning("pool: %s needs %s, more than the budget %s; loading it alone",
                            head.key.file_name, cost, budget)
            self._start_load(head, target, cost)
            return
        leaving = [s for s in rest if s.state in ("draining", "unloading")]
        freed = sum((s.cost for s in leaving), Cost())
        chosen: list[Slot] = []
        order = {"retired": 0, "ready": 1}
        now = time.monotonic()
        turns = [s for s in rest if self._in_turn(s, now, head)]
        for victim in sorted((s for s in rest if s.state in order and s not in turns),
                             key=lambda s: (order[s.state], s.active > 0, s.last_used)):
            if budget.fits(used - freed + cost):
                break
            chosen.append(victim)
            freed += victim.cost
        if turns and not budget.fits(used - freed + cost):
            left = max(s.turn_until for s in turns) - now
            head.reason = (f"{', '.join(s.name for s in turns)} has its turn for "
                           f"{left:.1f} s more")
            return
        why = f"making room for {head.key.file_name}"
        if not leaving and not any(v.active for v in chosen):
            donors = [replacing] if replacing is not None else chosen[-1:]
            for victim in chosen:
                if victim not in donors:
                    self._start_unload(victim, why)
            if len(donors) == 1 and len(chosen) <= (0 if replacing else 1):
                self._hand_over(donors[0], head, target, cost, why)
                return
            if donors:  # the others go first; the donor's turn comes when they are gone
                head.reason = f"{', '.join(v.name for v in chosen)} unloading"
                return
        for victim in chosen:
            self._retire(victim, why)
            victim.handoff = True
        busy = [s for s in leaving + chosen if s.active]
        head.reason = (f"waiting for {', '.join(s.name for s in busy)} to finish "
                       f"{sum(s.active for s in busy)} request(s)" if busy
                       else f"{', '.join(s.name for s in leaving + chosen)} unloading")

    @staticmethod
    def _in_turn(slot: Slot, now: float, head: Ticket) -> bool:
        """Whether ``slot`` keeps its turn against ``head`` (see TURN_GRACE_S)."""
        if slot.state != "ready" or now >= slot.turn_until:
            return False
        return slot.active > 0 or (now - slot.last_used < TURN_GRACE_S
                                   and head.since <= slot.last_used)

    def _hand_over(self, donor: Slot, head: Ticket, target: EngineConfig, cost: Cost,
                   why: str) -> None:
        del self._slots[donor.key]
        reason = f"{why} (its worker process loads it)" if donor.key != head.key else why
        self.history.append(PoolEvent("unload", donor.key.path, 0.0, reason,
                                      donor.config.n_ctx))
        log.info("pool: %s leaves: %s", donor.name, reason)
        self._start_load(head, target, cost, donor.worker)

    def _budget_now(self) -> MemoryBudget:
        now = time.monotonic()
        if self._budget is None or now - self._budget[0] > BUDGET_TTL_S:
            held = sum((s.cost for s in self._slots.values()), Cost())
            self._budget = (now, self._budget_source(held))
        return self._budget[1]

    def _fail(self, key: PoolKey, err: HearthError) -> None:
        for ticket in self._queue:
            if ticket.key == key:
                ticket.error = err
        self._schedule()

    def _retire(self, slot: Slot, why: str) -> None:
        """Unload now if idle, else when its requests end (never killed mid-request)."""
        if slot.state in ("unloading", "loading"):
            return
        slot.handoff = False
        if slot.active == 0:
            self._start_unload(slot, why)
        else:
            slot.state, slot.why_unloading = "draining", why

    def _start_load(self, head: Ticket, config: EngineConfig, cost: Cost,
                    worker: PoolWorker | None = None) -> None:
        keep = head.keep_alive_s if head.keep_alive_s is not None else self.keep_alive_s
        slot = Slot(head.key, config, worker or self._factory(), cost,
                    keep if keep >= 0 else float("inf"))
        self._slots[head.key] = slot
        head.reason = f"loading {slot.name}"
        threading.Thread(target=self._load, args=(slot,), name="pool-load",
                         daemon=True).start()

    def _start_unload(self, slot: Slot, why: str) -> None:
        slot.state, slot.why_unloading = "unloading", why
        self._budget = None
        threading.Thread(target=self._unload, args=(slot,), name="pool-unload",
                         daemon=True).start()

    # -- worker threads ----------------------------------------------------------------
    def _load(self, slot: Slot) -> None:
        t0 = time.perf_counter()
        try:
            info = slot.worker.load(slot.config)
        except Exception as err:
            error = err if isinstance(err, HearthError) else EngineError(
                f"Loading {slot.name} failed unexpectedly: {err}")
            log.error("pool: loading %s failed: %s", slot.name, error)
            with contextlib.suppress(Exception):
                slot.worker.close()
            with self._cond:
                if self._slots.get(slot.key) is slot:
                    del self._slots[slot.key]
                self._budget = None
                self._fail(slot.key, error)
                self._cond.notify_all()
            return
        ms = (time.perf_counter() - t0) * 1000
        try:
            cost = self._cost(slot.config, self._budget_now().gpu, info.gpu_layers)
        except HearthError:
            cost = slot.cost
        with self._cond:
            if self._closed or self._slots.get(slot.key) is not slot:
                slot.worker.close()
                return
            slot.info, slot.cost, slot.state = info, cost, "ready"
            slot.loaded_at = slot.last_used = time.monotonic()
            slot.turn_until = slot.loaded_at + ms / 1000
            self._last_info[slot.key] = info
            self.history.append(PoolEvent("load", slot.key.path, ms, "", slot.config.n_ctx))
            log.info("pool: loaded %s in %.0f ms (n_ctx %d, %s; %s)", slot.name, ms,
                     slot.config.n_ctx, cost, info.placement)
            self._schedule()
            self._cond.notify_all()

    def _unload(self, slot: Slot) -> None:
        t0 = time.perf_counter()
        with contextlib.suppress(Exception):
            slot.worker.close()
        ms = (time.perf_counter() - t0) * 1000
        with self._cond:
            if self._slots.get(slot.key) is slot:
                del self._slots[slot.key]
            self._budget = None
            self.history.append(PoolEvent("unload", slot.key.path, ms, slot.why_unloading,
                                          slot.config.n_ctx))
            log.info("pool: unloaded %s (%s) in %.0f ms", slot.name, slot.why_unloading, ms)
            self._schedule()
            self._cond.notify_all()

    def _reap(self) -> None:
        """Keep-alive: unload a model idle for longer than its keep-alive; and give the
        waiting request its chance when a model's turn ends."""
        with self._cond:
            while not self._closed:
                wake = 1.0
                now = time.monotonic()
                for slot in list(self._slots.values()):
                    if self._queue and self._in_turn(slot, now, self._queue[0]):
                        wake = min(wake, slot.turn_until - now,
                                   slot.last_used + TURN_GRACE_S - now if not slot.active
                                   else wake)
                    left = slot.expires_in
                    if left is None:
                        continue
                    if left <= 0:
                        self._start_unload(slot, "keep-alive expired")
                    else:
                        wake = min(wake, left)
                self._cond.wait(max(0.01, wake))
                if self._queue and not self._closed:
                    self._schedule()

