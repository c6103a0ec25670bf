"""Watched folders: collections kept up to date by polling.

A polling rescan rather than OS notifications (inotify, FSEvents, ReadDirectoryChangesW):
it needs no extra library, works the same on every platform and on network drives, where
notifications are unreliable, and costs one ``stat`` per file per round, since the indexer
opens only files whose size or mtime moved. Changed, added and deleted files are picked up
at the next round (``interval_s``, default 30 s).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.chat.documents.indexer import Indexer, IndexReport
from core.errors import HearthError

log = logging.getLogger("hearth.documents")


class FolderWatcher:
    """Re-indexes the collections ``names()`` returns every ``interval_s`` on its own thread;
    ``on_report`` gets each run that changed something, ``on_error`` each failure (the
    watcher goes on). ``stop()`` ends it at the next file boundary."""

    def __init__(self, indexer: Indexer, names: Callable[[], list[str]],
                 interval_s: float = 30.0,
                 on_report: Callable[[IndexReport], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.indexer, self.names, self.interval_s = indexer, names, interval_s
        self.on_report = on_report or (lambda _r: None)
        self.on_error = on_error or (lambda _m: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def run_once(self) -> list[IndexReport]:
        """One round over every watched collection (what the thread does each interval)."""
        reports = []
        for name in self.names():
            if self._stop.is_set():
                break
            try:
                report = self.indexer.index(name)
            except HearthError as err:
                log.warning("watching %s: %s", name, err)
                self.on_error(str(err))
                continue
            reports.append(report)
            if report.changed or report.failed:
                self.on_report(report)
        self.rounds += 1
        return reports

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)

    def start(self) -> FolderWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hearth-docs-watch",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.indexer.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
