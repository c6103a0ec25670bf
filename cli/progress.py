"""Progress bars for long CLI operations (downloads, quantization, indexing, benchmarks).

One helper so every command draws the same bar through ``rich``: on stderr (stdout stays
clean for pipes), and only when a person is watching — when stdout and stderr are both
terminals; otherwise the bar is silent and the command prints only its result. ``NO_COLOR``
(https://no-color.org) turns colours off, as rich honours it.

Usage::

    with progress_bar("Downloading model.gguf", total=size, unit="bytes") as bar:
        for done in chunks():
            bar.update(done)
        bar.note("retrying after a dropped connection")  # a line above the bar
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

Unit = Literal["bytes", "items"]


def wants_progress(stdout: TextIO | None = None, stderr: TextIO | None = None) -> bool:
    """True when a person watches both streams (neither is piped or redirected)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    return bool(getattr(out, "isatty", lambda: False)()
                and getattr(err, "isatty", lambda: False)())


class Bar:
    """One task's bar; every method is a no-op when the bar is silent."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def update(self, completed: float | None = None, *, total: float | None = None,
               description: str | None = None, advance: float | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=completed, total=total,
                              description=description, advance=advance)

    def note(self, text: str) -> None:
        """Print a line above the bar (a retry, a pause), keeping the bar below it."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)


def _columns(unit: Unit) -> list[ProgressColumn]:
    columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.percentage:>5.1f}%")]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns.append(MofNCompleteColumn())
    columns.append(TimeRemainingColumn())
    return columns


@contextmanager
def progress_bar(description: str, total: float | None = None, *, unit: Unit = "items",
                 stream: TextIO | None = None, enabled: bool | None = None) -> Iterator[Bar]:
    """A bar for one operation. ``enabled`` None: :func:`wants_progress`; ``stream``
    defaults to stderr. A silent bar (not a terminal) accepts the same calls."""
    stream = stream or sys.stderr
    if enabled is None:
        enabled = wants_progress(stderr=stream)
    if not enabled:
        yield Bar(None, None)
        return
    console = Console(file=stream, no_color=True if os.environ.get("NO_COLOR") else None,
                      force_terminal=True)
    with Progress(*_columns(unit), console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield Bar(progress, task)
