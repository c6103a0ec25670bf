"""Measures how responsive the GUI thread is: a 5 ms timer records how late it fires.

A frozen event loop is the anchors' main complaint; this probe makes it a number. The
longest lateness is the longest time the GUI could not react to input or repaint.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer

PERIOD_MS = 5


class LoopProbe(QObject):
    """Start it, do the work, read ``max_stall_ms`` (worst lateness beyond the period)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PERIOD_MS)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.stalls_ms: list[float] = []

    def start(self, reset: bool = True) -> None:
        """Start ticking; ``reset=False`` resumes after a deliberate pause (a screenshot)."""
        if reset:
            self.stalls_ms = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls_ms.append(max(0.0, (now - self._last) * 1000 - PERIOD_MS))
        self._last = now

    @property
    def max_stall_ms(self) -> float:
        return max(self.stalls_ms, default=0.0)


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
