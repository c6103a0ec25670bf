"""Capture llama.cpp's log so errors carry the real reason.

llama.cpp reports why a load or a context failed only in its log (e.g. "unknown model
architecture", "failed to allocate buffer"); the C API just returns NULL. One process-wide
callback keeps the recent lines in a ring buffer; callers mark a position before a native
call and read what was logged since. Set ``HEARTH_LLAMA_LOG=1`` to echo everything to stderr.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import deque

import llama_cpp

_LEVEL_ERROR = 4  # GGML_LOG_LEVEL_ERROR
_LEVEL_WARN = 3
_lines: deque[tuple[int, int, str]] = deque(maxlen=400)
_counter = 0
_partial = ""
_lock = threading.Lock()
_echo = os.environ.get("HEARTH_LLAMA_LOG") == "1"
_installed = False


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    global _counter, _partial
    chunk = text.decode("utf-8", errors="replace") if text else ""
    if _echo:
        sys.stderr.write(chunk)
    with _lock:
        _partial += chunk
        while "\n" in _partial:
            line, _partial = _partial.split("\n", 1)
            if line.strip():
                _counter += 1
                _lines.append((_counter, level, line.strip()))


def install() -> None:
    """Route llama.cpp's (and ggml's) log into the ring buffer; idempotent."""
    global _installed
    if not _installed:
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


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
