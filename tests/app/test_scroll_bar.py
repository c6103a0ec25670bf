"""The transcript's scroll bar: it looks like the style's own and its repaints never wake
Qt's GUI thread pool (whose wake-ups took the engine's cores in a long reply, issue 18)."""

from __future__ import annotations

import os
import sys
import time
from itertools import pairwise

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QScrollBar, QStyleFactory, QWidget

from app.scroll_bar import STRIP_ROWS, LazyBar, strips

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="counts thread wake-ups in /proc")


def _pool_wakeups() -> int:
    """Voluntary context switches of Qt's GUI pool threads in this process so far."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != "Thread (pooled)":
                    continue
            with open(f"/proc/self/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f
                             if line.startswith("voluntary_ctxt_switches"))
        except FileNotFoundError:  # a thread that just ended
            continue
    return total


_KEEP: list[object] = []  # windows and styles outlive their test's local names


def _bar(qtbot, bar: QScrollBar) -> QScrollBar:
    """``bar`` in a window, as tall as a transcript, under the Fusion style."""
    top = QWidget()
    qtbot.addWidget(top)
    top.resize(200, 620)
    style = QStyleFactory.create("Fusion")
    _KEEP.extend((top, style, bar))
    bar.setStyle(style)
    bar.setParent(top)
    bar.setGeometry(100, 10, 14, 598)
    bar.setRange(0, 5000)
    bar.setPageStep(600)
    top.show()
    qtbot.waitExposed(top)
    QApplication.processEvents()  # the window's first paint: it has a backing store now
    return bar


def _wakeups_over_repaints(bar: QScrollBar, n: int = 20) -> int:
    QApplication.processEvents()
    time.sleep(0.1)  # a pool thread still ending an earlier task must not count here
    before = _pool_wakeups()
    for i in range(n):
        bar.setValue(i * 200)
        bar.repaint()
    return _pool_wakeups() - before


def test_its_repaints_wake_no_pool_thread_where_the_styles_bar_does(qtbot) -> None:
    plain = _wakeups_over_repaints(_bar(qtbot, QScrollBar(Qt.Orientation.Vertical)))
    ours = _wakeups_over_repaints(_bar(qtbot, LazyBar()))
    print(f"pool wake-ups over 20 repaints: the style's bar {plain}, the transcript's {ours}")
    assert plain > 100  # the mechanism is real here: tall fills go to the pool
    assert ours <= 1  # (one: in a full run a pool thread may wake late from an earlier test)


def _gray(image: QImage, x: int, y: int) -> list[int]:
    v = image.pixel(x, y)
    return [(v >> shift) & 255 for shift in (16, 8, 0)]


@pytest.mark.parametrize("value", [0, 1234, 4400])
def test_it_looks_like_the_styles_own(qtbot, value: int) -> None:
    plain, ours = _bar(qtbot, QScrollBar(Qt.Orientation.Vertical)), _bar(qtbot, LazyBar())
    for bar in (plain, ours):
        bar.setValue(value)
    a, b = plain.grab().toImage(), ours.grab().toImage()
    assert a.size() == b.size()
    diffs = [max(abs(p - q) for p, q in zip(_gray(a, x, y), _gray(b, x, y), strict=True))
             for y in range(a.height()) for x in range(a.width())]
    # Shades within a few levels on average (the handle in the same place: a moved or
    # missing handle differs by ~30 levels over a tenth of the bar).
    assert sum(diffs) / len(diffs) < 5, sum(diffs) / len(diffs)
    assert sum(d > 24 for d in diffs) / len(diffs) < 0.02


def test_strips_cover_the_rect_below_the_threshold() -> None:
    rect = QRect(3, 7, 14, 598)
    parts = list(strips(rect))
    assert all(p.height() <= STRIP_ROWS < 96 for p in parts)
    assert parts[0].top() == rect.top() and parts[-1].bottom() == rect.bottom()
    assert sum(p.height() for p in parts) == rect.height()
    assert all(a.bottom() + 1 == b.top() for a, b in pairwise(parts))
