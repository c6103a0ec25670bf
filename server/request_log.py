"""The live request log: one entry per HTTP request, kept in memory (the last 500), with
listeners (the app's server window) told of each new or finished entry from the serving
thread. Every request is also one line in Hearth's log file."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("hearth.server")


@dataclass
class LogEntry:
    id: int
    method: str
    path: str
    client: str
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    status: int | None = None  # None while in flight
    ms: float = 0.0
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str = ""  # the engine's finish reason(s), "cancelled" when the client left
    t_end_ns: int = 0  # when the engine ended the request (perf_counter_ns clock)

    @property
    def in_flight(self) -> bool:
        return self.status is None

    def line(self) -> str:
        status = "…" if self.status is None else str(self.status)
        tokens = (f" {self.prompt_tokens}→{self.completion_tokens} tok"
                  if self.prompt_tokens or self.completion_tokens else "")
        finish = f" {self.finish}" if self.finish else ""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.started))
        return (f"{stamp} {self.method} {self.path} {status} {self.ms:.0f} ms{tokens}"
                f"{finish}")


class RequestLog:
    def __init__(self, keep: int = 500) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LogEntry], None]] = []

    def subscribe(self, callback: Callable[[LogEntry], None]) -> None:
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[LogEntry], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def begin(self, method: str, path: str, client: str) -> LogEntry:
        entry = LogEntry(next(self._ids), method, path, client)
        with self._lock:
            self._entries.append(entry)
        self._tell(entry)
        return entry

    def end(self, entry: LogEntry, status: int) -> None:
        entry.status = status
        entry.ms = (time.perf_counter() - entry.t0) * 1000
        log.info("server: %s %s %s %.0f ms%s", entry.method, entry.path, status, entry.ms,
                 f" ({entry.prompt_tokens}→{entry.completion_tokens} tok {entry.finish})"
                 if entry.finish else "")
        self._tell(entry)

    def _tell(self, entry: LogEntry) -> None:
        for callback in list(self._listeners):
            try:
                callback(entry)
            except Exception:  # a broken listener must not break serving
                log.exception("server: a request-log listener failed")

    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if e.in_flight)
