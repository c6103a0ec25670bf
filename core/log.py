"""Hearth's log: stdlib ``logging``, configured once per process, into one rotating file.

Every area logs under ``hearth.<area>`` (``hearth.engine``, ``hearth.app``, ``hearth.llama``
for llama.cpp's own lines...). The file lives in Hearth's data folder (``logs/hearth.log``,
readable by the user alone); Help › Open log folder shows it. Nothing is written to the
console unless asked (``hearth-cli --verbose``), so benchmarks and tests print only their
own output. Worker processes append to the same file through a handler that reopens it
after the front end rotated it.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from core.paths import hearth_home

LOG_NAME = "hearth.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_configured_for: tuple[str, bool] | None = None


def log_dir() -> Path:
    """The folder that holds Hearth's log files (created, owner-only)."""
    path = hearth_home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    return path


def log_file() -> Path:
    return log_dir() / LOG_NAME


def _mark(handler: logging.Handler) -> None:
    """Tag a handler as Hearth's own, so a second configure() replaces only those."""
    setattr(handler, "_hearth", True)  # noqa: B010


def configure(*, verbose: bool = False, worker: bool = False) -> Path:
    """Send ``hearth.*`` records to the log file (and to stderr when ``verbose``); returns
    the file. Idempotent per (file, verbose); a new ``HEARTH_HOME`` (tests) re-targets it."""
    global _configured_for
    path = log_file()
    key = (str(path), verbose)
    root = logging.getLogger("hearth")
    if _configured_for == key:
        return path
    for handler in list(root.handlers):
        if getattr(handler, "_hearth", False):
            root.removeHandler(handler)
            handler.close()
    file_handler: logging.Handler
    if worker:
        file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8", delay=True)
    else:
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    _mark(file_handler)
    root.addHandler(file_handler)
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _mark(console)
        root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose or os.environ.get("HEARTH_DEBUG") else logging.INFO)
    root.propagate = False
    _configured_for = key
    return path
