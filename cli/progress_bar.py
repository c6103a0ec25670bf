"""Progress bars for long commands (quantize, bench), drawn by ``rich`` on stderr.

A local helper until the shared ``cli/progress.py`` lands: bars are shown only when both
stdout and stderr are terminals (piped or redirected output stays clean, and ``--json`` on
stdout is never interleaved with escape codes), and ``NO_COLOR`` turns colour off.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def bars_wanted() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


class ProgressBar:
    """One bar: ``update(done, total, text)``; nothing at all when not on a terminal."""

    def __init__(self, description: str, total: float = 1.0) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if bars_wanted():
            console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.percentage:>3.0f}%"),
                                      TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
                                      console=console, transient=False)
            self._task = self._progress.add_task(description, total=total, detail="")

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def update(self, done: float, total: float | None = None, detail: str = "") -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total, detail=detail[:60])

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
