"""Plain text that only grows at its end, laid out and painted one visual line at a time.

Why not a QLabel or a QTextEdit: both lay out a paragraph as a whole, so a reply that is one
long paragraph costs more at every token than at the one before (the profile of issue 18:
half the GUI thread in ``QLabel::heightForWidth`` shaping the whole growing block, several
times per update). Greedy line breaking never moves a break that is followed by another
line, so every visual line but the last is final once laid out: this widget keeps those
lines as they are and lays out only the last one plus the new text, then repaints only the
lines that changed. A width change (a resize) lays everything out again, once.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QSize, Qt
from PySide6.QtGui import (
    QFont,
    QFontMetricsF,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import QSizePolicy, QWidget


class StreamingText(QWidget):
    """Append-only plain text, wrapped at the widget's width (long words break anywhere, so
    it never asks for more width than it is given)."""

    def __init__(self, parent: QWidget | None = None, font: QFont | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        # Opaque: it fills its own background, so an update of a few new characters does
        # not make Qt repaint the message frame and the column beneath them first.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        # Taller by a line: only the new line is painted (``append`` asks for it), not the
        # lines already on screen. A width change lays out and repaints everything.
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        if font is not None:
            self.setFont(font)
        self._option = QTextOption()
        self._option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self._text = ""
        self._lines: list[tuple[QTextLayout, int]] = []  # final lines: (layout, line index)
        self._open: tuple[QTextLayout, int] | None = None  # the last line: (layout, index)
        self._cur = ""  # text from the start of the first open line to the end
        self._width = 0
        self._spacing = QFontMetricsF(self.font()).lineSpacing()
        self.layouts_made = 0  # layout passes
        self.laid_out = 0  # characters laid out by the last append (stays about a line)
        self.dirty = QRect()  # what the last append repainted
        self.setFixedHeight(0)

    # -- content ---------------------------------------------------------------------------
    def text(self) -> str:
        return self._text

    def clear(self) -> None:
        self._text = ""
        self._reset()
        self._fit(0)
        self.update()

    def set_text(self, text: str) -> None:
        self.clear()
        self.append(text)

    def append(self, piece: str) -> None:
        """Add ``piece`` at the end: lays out the last visual line and the new text only."""
        if not piece:
            return
        self._text += piece
        if self._width <= 0:  # not laid out yet: the first resize lays it all out
            return
        first_changed = len(self._lines)
        was_open = self._open is not None
        old_end = self._line(first_changed).naturalTextWidth() if was_open else 0.0
        self.laid_out = 0
        parts = piece.split("\n")
        self._cur += parts[0]
        for part in parts[1:]:
            self._layout_current(final=True)
            self._cur = part
        self._layout_current(final=False)
        total = self.line_count()
        self._fit(total)
        top = int(first_changed * self._spacing)
        if was_open and total == first_changed + 1:
            # The same last line, longer: only its new end is repainted (and flushed to the
            # screen), a few pixels back for shaping that joins the old text to the new.
            left = max(0, int(old_end - self._spacing))
            right = min(self.width(), int(self._line(first_changed).naturalTextWidth()
                                          + self._spacing))
            self.dirty = QRect(left, top, max(1, right - left), int(self._spacing) + 1)
        else:
            self.dirty = QRect(0, top, self.width(), int(total * self._spacing) - top + 1)
        self.update(self.dirty)

    def line_count(self) -> int:
        return len(self._lines) + (1 if self._open is not None else 0)

    # -- layout ----------------------------------------------------------------------------
    def _reset(self) -> None:
        self._lines, self._open, self._cur = [], None, ""

    def _layout_current(self, final: bool) -> None:
        """Lay out ``_cur``; freeze every line but the last (all of them when ``final``:
        a newline ended the paragraph). The last line stays open in the same layout."""
        layout = QTextLayout(self._cur, self.font())
        layout.setTextOption(self._option)
        layout.setCacheEnabled(True)
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(self._width)
            line.setPosition(QPointF(0, 0))
        layout.endLayout()
        self.layouts_made += 1
        self.laid_out += len(self._cur)
        n = layout.lineCount()  # at least 1: an empty text still has its (empty) line
        keep = n if final else max(0, n - 1)
        self._lines.extend((layout, i) for i in range(keep))
        if final or n == 0:
            self._open, self._cur = None, ""
        else:
            self._open = (layout, keep)
            self._cur = self._cur[layout.lineAt(keep).textStart():]

    def _relayout_all(self) -> None:
        self._reset()
        self._spacing = QFontMetricsF(self.font()).lineSpacing()
        if self._width <= 0 or not self._text:
            self._fit(0)
            return
        parts = self._text.split("\n")
        for part in parts[:-1]:
            self._cur = part
            self._layout_current(final=True)
        self._cur = parts[-1]
        self._layout_current(final=False)
        self._fit(self.line_count())

    def _fit(self, lines: int) -> None:
        height = int(lines * self._spacing + 0.999)
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def _line(self, row: int):
        if row < len(self._lines):
            layout, index = self._lines[row]
            return layout.lineAt(index)
        assert self._open is not None
        layout, index = self._open
        return layout.lineAt(index)

    # -- Qt ----------------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return QSize(self._width or 200, self.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        if event.size().width() != self._width:
            self._width = event.size().width()
            self._relayout_all()
            self.update()
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        total = self.line_count()
        rect = event.rect()
        painter = QPainter(self)
        painter.fillRect(rect, self.palette().window())
        if total:
            first = max(0, int(rect.top() // self._spacing))
            last = min(total - 1, int(rect.bottom() // self._spacing))
            painter.setPen(self.palette().color(self.foregroundRole()))
            for row in range(first, last + 1):
                self._line(row).draw(painter, QPointF(0, row * self._spacing))
        painter.end()
