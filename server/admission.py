"""Who runs now, who waits, who is told to come back: slots, two lanes, a bounded queue.

The server admits at most ``slots`` requests into the engine at once (the sequences the
model decodes together) and lets at most ``max_queue`` more wait; one more is refused at
once with :class:`QueueFull` (the API answers 429 with ``Retry-After``), so a flood never
piles up unbounded work. Interactive requests (API chat) take a free slot before any waiting
bulk request (batch lines), and bulk work never holds the last slot while interactive work
could use it, so a batch job runs *under* interactive traffic instead of starving it.
A waiting request whose client has gone (its cancel flag set) leaves the queue at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from core.engine.api import Lane

_POLL_S = 0.02  # how often a waiter re-checks its cancel flag


class QueueFull(Exception):
    """No room to wait; ``retry_after_s`` is a fair guess of when there will be."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("The server is at capacity: too many requests are waiting.")
        self.retry_after_s = retry_after_s


@dataclass
class Ticket:
    """One admitted request: waits for a slot with :meth:`Admission.wait`, then holds it
    until :meth:`Admission.release`."""

    lane: Lane
    t_enter: float = field(default_factory=time.monotonic)
    running: bool = False
    released: bool = False


class Admission:
    """Thread-safe slot accounting for one backend. ``slots`` may change when a new model
    loads (:meth:`resize`)."""

    def __init__(self, slots: int, max_queue: int) -> None:
        self._cond = threading.Condition()
        self.slots = max(1, slots)
        self.max_queue = max(0, max_queue)
        self._waiting: dict[Lane, deque[Ticket]] = {"interactive": deque(), "bulk": deque()}
        self.running = 0
        self.running_bulk = 0
        self._recent_s: deque[float] = deque(maxlen=32)  # how long finished requests held a slot

    # -- figures -------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._waiting.values())

    def retry_after_s(self) -> float:
        """Roughly when a place frees up: the mean time a request holds a slot, times the
        queue ahead per slot; at least a second."""
        with self._cond:
            return self._retry_after_locked()

    def resize(self, slots: int) -> None:
        with self._cond:
            self.slots = max(1, slots)
            self._cond.notify_all()

    # -- the protocol --------------------------------------------------------------------
    def enter(self, lane: Lane) -> Ticket:
        """Join the queue, or raise :class:`QueueFull` at once when there is no room. Bulk
        work is never refused: its own runner paces it (it waits without a queue limit)."""
        with self._cond:
            busy = self.running + len(self._waiting["interactive"])  # bulk waiters yield
            if lane == "interactive" and busy >= self.slots + self.max_queue:
                raise QueueFull(self._retry_after_locked())
            ticket = Ticket(lane)
            self._waiting[lane].append(ticket)
            return ticket

    def _retry_after_locked(self) -> float:
        mean = sum(self._recent_s) / len(self._recent_s) if self._recent_s else 1.0
        ahead = sum(len(q) for q in self._waiting.values()) + self.running
        return max(1.0, mean * ahead / self.slots)

    def _may_start(self, ticket: Ticket) -> bool:
        if self.running >= self.slots:
            return False
        interactive = self._waiting["interactive"]
        if ticket.lane == "interactive":
            return interactive[0] is ticket
        if interactive or self._waiting["bulk"][0] is not ticket:
            return False
        # Bulk keeps one slot free for interactive work when there is more than one.
        return self.slots == 1 or self.running_bulk < self.slots - 1

    def wait(self, ticket: Ticket, cancel: threading.Event) -> bool:
        """Block until the ticket holds a slot (True) or ``cancel`` is set first (False;
        the ticket has then left the queue)."""
        with self._cond:
            while ticket.released or not self._may_start(ticket):
                if ticket.released:  # taken out of the queue by someone else
                    return False
                if cancel.is_set():
                    self._waiting[ticket.lane].remove(ticket)
                    ticket.released = True
                    self._cond.notify_all()
                    return False
                self._cond.wait(_POLL_S)
            self._waiting[ticket.lane].popleft()
            ticket.running = True
            ticket.t_enter = time.monotonic()
            self.running += 1
            if ticket.lane == "bulk":
                self.running_bulk += 1
            self._cond.notify_all()
            return True

    def release(self, ticket: Ticket) -> None:
        """Give the slot back (idempotent; also takes a ticket that never started out of
        the queue)."""
        with self._cond:
            if ticket.released:
                return
            ticket.released = True
            if ticket.running:
                self.running -= 1
                if ticket.lane == "bulk":
                    self.running_bulk -= 1
                self._recent_s.append(time.monotonic() - ticket.t_enter)
            elif ticket in self._waiting[ticket.lane]:
                self._waiting[ticket.lane].remove(ticket)
            self._cond.notify_all()
