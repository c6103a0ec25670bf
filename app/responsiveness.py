"""How responsive the GUI thread is, and one cause of stalls kept out of its way.

:class:`LoopProbe`: a 5 ms timer records how late it fires; the longest lateness is the
longest time the GUI could not react to input or repaint. It also records the garbage
collector's pauses while it runs, since a collection stops every thread of the process.

:func:`settle_heap`: a full collection walks every object the process has ever kept alive;
in the test suite's process (the whole suite's objects) that measured 89-128 ms stalls in
the middle of a stream, and in the app a smaller but real pause (Qt's wrappers, every
imported module). Objects alive once the window is up are the long-lived ones: freezing
them (``gc.freeze``) takes them out of every later collection, so a pause costs what was
allocated since, not the size of the heap.
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, Qt, QTimer

PERIOD_MS = 5


def settle_heap() -> None:
    """Collect the young generations (cheap), then freeze what is left: later collections
    never walk it again. Called once the window exists (again for each window in tests)."""
    gc.collect(1)
    gc.freeze()


class LoopProbe(QObject):
    """Start it, do the work, read ``max_stall_ms`` (worst lateness beyond the period) and
    ``max_gc_ms`` (the longest garbage collection meanwhile)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PERIOD_MS)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self._gc_start = (0.0, 0.0)
        self.stalls_ms: list[float] = []
        self.gc_ms: list[tuple[int, float, float]] = []  # (generation, wall, CPU ms) each

    def start(self, reset: bool = True) -> None:
        """Start ticking; ``reset=False`` resumes after a deliberate pause (a screenshot)."""
        if reset:
            self.stalls_ms, self.gc_ms = [], []
        self._last = time.perf_counter()
        self._timer.start()
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        self._timer.stop()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = (time.perf_counter(), time.thread_time())
        else:
            wall, cpu = self._gc_start
            self.gc_ms.append((info["generation"], (time.perf_counter() - wall) * 1e3,
                               (time.thread_time() - cpu) * 1e3))

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls_ms.append(max(0.0, (now - self._last) * 1000 - PERIOD_MS))
        self._last = now

    @property
    def max_stall_ms(self) -> float:
        return max(self.stalls_ms, default=0.0)

    @property
    def max_gc_ms(self) -> float:
        """The longest collection's CPU time (what it cost, whatever else the machine ran)."""
        return max((cpu for _, _, cpu in self.gc_ms), default=0.0)

    def gc_summary(self) -> str:
        full = [cpu for gen, _, cpu in self.gc_ms if gen == 2]
        return (f"{len(self.gc_ms)} collections ({len(full)} full), longest "
                f"{self.max_gc_ms:.1f} ms CPU")


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
