"""llama.cpp's log, captured: errors carry the real reason, and nothing reaches the console.

llama.cpp reports why a load or a context failed only in its log (e.g. "unknown model
architecture", "failed to allocate buffer"); the C API just returns NULL. One process-wide
callback keeps the recent lines in a ring buffer (callers mark a position before a native
call and read what was logged since), hands each line to any listener (quantization reads
its progress there), and writes it to Hearth's log file through the ``hearth.llama`` logger
— never to stderr, unless ``HEARTH_LLAMA_LOG=1`` asks for an echo.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator

import llama_cpp

_LEVEL_ERROR = 4  # GGML_LOG_LEVEL_ERROR (ggml.h: none 0, debug 1, info 2, warn 3, error 4)
_LEVEL_WARN = 3
_TO_LOGGING = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_lines: deque[tuple[int, int, str]] = deque(maxlen=400)
_counter = 0
_partial = ""
_last_level = 2
_lock = threading.Lock()
_echo = os.environ.get("HEARTH_LLAMA_LOG") == "1"
_installed = False
_listeners: list[Callable[[int, str], None]] = []
log = logging.getLogger("hearth.llama")

Listener = Callable[[int, str], None]  # (ggml level, line)


def _on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
    global _counter, _partial, _last_level
    chunk = text.decode("utf-8", errors="replace") if text else ""
    if _echo:
        sys.stderr.write(chunk)
    if level == 5:  # GGML_LOG_LEVEL_CONT: continues the previous line at its level
        level = _last_level
    _last_level = level
    done: list[str] = []
    with _lock:
        _partial += chunk
        while "\n" in _partial:
            line, _partial = _partial.split("\n", 1)
            if line.strip():
                _counter += 1
                _lines.append((_counter, level, line.strip()))
                done.append(line.strip())
        listeners = list(_listeners)
    for line in done:
        log.log(_TO_LOGGING.get(level, logging.DEBUG), "%s", line)
        for listener in listeners:
            listener(level, line)


_callback = llama_cpp.llama_log_callback(_on_log)


def install() -> None:
    """Route llama.cpp's (and ggml's) log into the ring buffer and the log; idempotent."""
    global _installed
    if not _installed:
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener(level, line)`` for every line logged inside the block."""
    install()
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def mark() -> int:
    """A position in the log; pass it to :func:`since`."""
    with _lock:
        return _counter


def since(position: int, min_level: int = 0) -> list[str]:
    """Lines logged after ``position`` with at least ``min_level`` (3 warn, 4 error)."""
    with _lock:
        return [line for n, level, line in _lines if n > position and level >= min_level]


def errors_since(position: int) -> list[str]:
    """Warning and error lines since ``position`` (where failure reasons appear)."""
    return since(position, _LEVEL_WARN)
