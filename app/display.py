"""Is there a screen to show a window on? Asked before Qt is, because Qt's answer to "no"
is an abort (exit 134) with advice to reinstall and to install ``libxcb-cursor0``, which
misleads someone who merely started ``hearth`` over ssh.

On Linux (and other X11/Wayland systems) with the default platform plugin: no ``DISPLAY``
and no ``WAYLAND_DISPLAY`` means no display; a ``DISPLAY`` that cannot be opened (a stale
one, X forwarding off) is found by opening it with libxcb, the library Qt's plugin uses.
Other platforms, and an explicit ``QT_QPA_PLATFORM`` other than xcb/wayland (offscreen,
vnc, eglfs...), are left to Qt.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


def _xcb_error(display: str) -> str | None:
    """Why libxcb cannot open ``display``, or None when it can (or libxcb is missing: then
    Qt's own message, about its libraries, is the right one)."""
    name = ctypes.util.find_library("xcb")
    if name is None:
        return None
    try:
        xcb = ctypes.CDLL(name)
    except OSError:
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        failed = xcb.xcb_connection_has_error(conn)
    finally:
        xcb.xcb_disconnect(conn)
    return f"cannot open the display {display!r}" if failed else None


def no_display_reason(environ: dict[str, str] | None = None,
                      platform: str | None = None) -> str | None:
    """A short reason when no window can be shown here, else None."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform.startswith(("win", "darwin")):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if qpa and qpa not in ("xcb", "wayland"):
        return None
    display, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    if qpa == "wayland":
        return None if wayland else "no Wayland display (WAYLAND_DISPLAY is not set)"
    if not display:
        if wayland and qpa != "xcb":
            return None
        return "no display found (DISPLAY is not set)"
    return _xcb_error(display)


def prefer_socket_uploads(environ: dict[str, str] | None = None) -> None:
    """Before the QApplication: X11 window updates go over the X socket, not shared memory
    (``QT_XCB_NO_MITSHM``), unless the user chose otherwise.

    Why: with MIT-SHM every flush of the window to the screen comes back as a completion
    event, which wakes Qt's X event thread and then the GUI thread again. While a reply
    streams that is two more thread wake-ups per update, and on a machine whose cores all run
    the engine each wake-up preempts one of its threads (the others then wait at ggml's
    barrier). Measured under Xvfb, 1,024-token reply (issue 18): the window's process went
    from 5.0-6.0 to 3.5 voluntary context switches per streamed piece, its X event thread
    from 1.0-1.6 to under 0.5, and the window decoded at 0.961× the CLI (0.91-0.94× in the
    runs before). What is streamed is a line of text at a time, a few tens of KB; a whole
    window repaint (a resize) copies a few MB through the socket instead, once."""
    env = os.environ if environ is None else environ
    env.setdefault("QT_XCB_NO_MITSHM", "1")
