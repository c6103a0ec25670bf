"""The transcript's scroll bar: few repaints while a reply streams, none that wakes Qt's
GUI thread pool.

Qt's raster engine splits any fill of 96 rows or more across its GUI thread pool and waits
for it (``QT_THREAD_PARALLEL_FILLS`` in qdrawhelper.cpp; the pool is not reachable from
Python and has no switch). On 2 cores each pool wake-up preempts one of the engine's two
threads, and the other then spins at ggml's barrier: in issue 18 this bar, as tall as the
view, was the last source of such wake-ups while a long reply streamed (about 3 per token
over the last 128 tokens of a 1,024-token reply, from one repaint a second: Fusion fills its
groove in several passes). Painting it in strips shorter than that threshold keeps every
fill on the GUI thread; the pixels are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import QAbstractSlider, QScrollBar, QStyle, QStyleOptionSlider

STRIP_ROWS = 64  # below the raster engine's 96-row threshold for a parallel fill


def strips(rect: QRect, rows: int = STRIP_ROWS) -> Iterator[QRect]:
    """``rect`` cut into horizontal bands of at most ``rows`` rows, top to bottom."""
    for top in range(rect.top(), rect.bottom() + 1, rows):
        yield QRect(rect.left(), top, rect.width(), min(rows, rect.bottom() + 1 - top))


def paint_in_strips(painter: QPainter, rect: QRect, draw: Callable[[QPainter], None]) -> None:
    """Call ``draw`` once per strip of ``rect``, clipped to it, so that no fill it makes
    reaches the parallel-fill threshold (``draw`` must not set a clip of its own)."""
    for strip in strips(rect):
        painter.setClipRect(strip)
        draw(painter)


class LazyBar(QScrollBar):
    """Repaints at most every REPAINT_MS for what the growing reply does to it (a new range,
    the scroll that follows the bottom); what the user does with it shows at once.

    While a long reply streams the bar changed twice per new line, and each repaint filled
    strips as tall as the view (the bar, and before it was opaque the five widgets under
    it): 25 pool wake-ups per token late in a 1,024-token reply, whose last 128 tokens then
    decoded 20% slower than its first (issue 18). Once a second is enough for a bar that
    moves by a line's height while the user reads, and it paints in strips (module doc)."""

    REPAINT_MS = 1000

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Vertical)
        # It paints its whole rectangle itself: the widgets under it need not repaint with
        # it, and no background fill as tall as the bar comes before its paint event.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(self.REPAINT_MS)
        self._later.timeout.connect(self.update)
        self._ours = False
        self.paints = 0  # paint events handled (tests)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Changes made inside are the transcript's own (following the bottom)."""
        self._ours = True
        try:
            yield
        finally:
            self._ours = False

    def sliderChange(self, change: QAbstractSlider.SliderChange) -> None:
        ours = change == QAbstractSlider.SliderChange.SliderRangeChange or self._ours
        if ours and not self.isSliderDown():
            if not self._later.isActive():
                self._later.start()
            return
        super().sliderChange(change)

    def style_option(self) -> QStyleOptionSlider:
        """What QScrollBar's own paint event gives the style: its state, with the part
        under the pointer or held by it active."""
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        opt.subControls = QStyle.SubControl.SC_All
        if self.isSliderDown():
            opt.activeSubControls = QStyle.SubControl.SC_ScrollBarSlider
            opt.state |= QStyle.StateFlag.State_Sunken
        elif self.underMouse():
            at = self.mapFromGlobal(self.cursor().pos())
            opt.activeSubControls = self.style().hitTestComplexControl(
                QStyle.ComplexControl.CC_ScrollBar, opt, at, self)
        else:
            opt.activeSubControls = QStyle.SubControl.SC_None
        return opt

    def paintEvent(self, event: QPaintEvent) -> None:
        """Fusion's look, drawn here: Fusion paints the groove through a clip of its own
        and with more passes than its pixels need, so even a strip-clipped call woke the
        pool (6 times per call on a 64-row image). The arrow buttons, small, are the
        style's. Under another style (a desktop's own) the style paints it all."""
        self.paints += 1
        if self.style().name().lower() != "fusion":
            super().paintEvent(event)
            return
        opt = self.style_option()
        style, cc = self.style(), QStyle.ComplexControl.CC_ScrollBar
        groove = style.subControlRect(cc, opt, QStyle.SubControl.SC_ScrollBarGroove, self)
        slider = style.subControlRect(cc, opt, QStyle.SubControl.SC_ScrollBarSlider, self)
        pal = self.palette()
        button, outline = pal.button().color(), pal.window().color().darker(140)
        outline.setAlpha(180)
        edge = QColor(outline)
        edge.setAlpha(40)
        active = opt.activeSubControls & QStyle.SubControl.SC_ScrollBarSlider
        handle = _across(groove, [(0, button.lighter(108)), (1, button)])
        if active and opt.state & QStyle.StateFlag.State_Sunken:
            handle = QBrush(_merged(button.lighter(124), button.lighter(102)))
        elif active:
            handle = _across(groove, [(0, button.lighter(124).darker(102)),
                                      (1, button.lighter(102).lighter(102))])
        track = _across(groove, [(0, button.darker(107)), (0.1, button.darker(105)),
                                 (0.9, button.darker(105)), (1, button.darker(107))])
        buttons = QStyleOptionSlider(opt)
        buttons.subControls = (QStyle.SubControl.SC_ScrollBarAddLine
                               | QStyle.SubControl.SC_ScrollBarSubLine)

        def draw(p: QPainter) -> None:
            p.fillRect(self.rect(), pal.window())
            p.fillRect(groove, track)
            p.setPen(outline)
            p.drawLine(groove.topLeft(), groove.bottomLeft())
            p.setPen(edge)
            p.drawLine(groove.left() + 1, groove.top(), groove.left() + 1, groove.bottom())
            p.drawLine(groove.right() - 1, groove.top(), groove.right() - 1, groove.bottom())
            if not slider.isEmpty() and self.maximum() > self.minimum():
                p.setPen(outline)
                p.setBrush(handle)
                p.drawRect(slider.adjusted(0, -1, 1, 0))
                p.setPen(QColor(255, 255, 255, 30))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(slider.adjusted(1, 0, -1, -1))
            style.drawComplexControl(cc, buttons, p, self)

        painter = QPainter(self)
        paint_in_strips(painter, event.rect(), draw)
        painter.end()


def _across(rect: QRect, stops: list[tuple[float, QColor]]) -> QBrush:
    """A left-to-right gradient over ``rect`` (Fusion shades a vertical bar across)."""
    gradient = QLinearGradient(rect.left(), rect.center().y(), rect.right(), rect.center().y())
    for at, color in stops:
        gradient.setColorAt(at, color)
    return QBrush(gradient)


def _merged(a: QColor, b: QColor, share: int = 40) -> QColor:
    """``share`` percent of ``a`` and the rest of ``b`` (Fusion's pressed handle)."""
    return QColor((a.red() * share + b.red() * (100 - share)) // 100,
                  (a.green() * share + b.green() * (100 - share)) // 100,
                  (a.blue() * share + b.blue() * (100 - share)) // 100)
