"""Download progress as plain values, and the control object that pauses or cancels it.

Both faces use the same stream: the CLI draws a progress bar (or prints JSON lines), the GUI
forwards each event to a queued signal. Nothing here knows about threads beyond an Event.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal[
    "start", "progress", "retry", "paused", "resumed", "verifying", "refetch", "done"
]


@dataclass(frozen=True)
class DownloadEvent:
    """One step of a download.

    ``done``/``total`` are bytes of the current file (``done`` counts bytes already on disk
    from an earlier attempt, so a resumed bar starts where it stopped); ``rate`` is bytes/s
    over the last few seconds; ``eta`` seconds, None while unknown.
    """

    kind: Kind
    repo_id: str
    filename: str
    done: int = 0
    total: int = 0
    rate: float = 0.0
    eta: float | None = None
    resumed_from: int = 0
    attempt: int = 0
    message: str = ""
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        return data


class DownloadControl:
    """Pause, resume or cancel a running download from another thread.

    Pausing closes the connection and waits; resuming reopens it with a Range request from
    the bytes on disk. Cancelling stops at the next chunk and keeps the partial file, so a
    later download of the same file resumes.
    """

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # wake a paused download so it can stop

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_running(self, timeout: float | None = None) -> bool:
        """Block while paused; True once running (or cancelled)."""
        return self._running.wait(timeout)

    def sleep(self, seconds: float) -> None:
        """Sleep that a cancel interrupts (used between retries)."""
        self._cancel.wait(seconds)


class RateMeter:
    """Bytes per second over a sliding window, for the rate and ETA of progress events."""

    def __init__(self, window: float = 3.0, clock: Any = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> float:
        now = self._clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0

    def reset(self) -> None:
        self._samples.clear()
