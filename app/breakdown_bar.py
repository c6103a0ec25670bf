"""The last reply's time breakdown (tokenize · prefill · decode · detokenize · other): a bar
split by share of the time, each part labelled with its milliseconds where it is wide enough,
and a legend under it that names every part with its figure (so the thin ones are read too).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

PHASE_COLORS = {"tokenize": "#8e44ad", "prefill": "#e67e22", "decode": "#2980b9",
                "detokenize": "#27ae60", "other": "#95a5a6"}


def ms_text(ms: float) -> str:
    """Milliseconds as a person reads them: 0.42 ms, 38 ms, 2,310 ms."""
    if ms < 10:
        return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms"
    return f"{ms:,.0f} ms"


class _Bar(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.phases: list[tuple[str, float, float]] = []
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        x, width, height = 0.0, float(self.width()), float(self.height())
        metrics = painter.fontMetrics()
        for name, ms, pct in self.phases:
            w = width * pct / 100
            rect = QRectF(x, 0, w, height)
            painter.fillRect(rect, QColor(PHASE_COLORS.get(name, "#777")))
            label = ms_text(ms)
            if metrics.horizontalAdvance(label) + 6 <= w:
                painter.setPen(QColor("white"))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
            x += w
        painter.end()


class BreakdownBar(QWidget):
    """``set_phases([(name, ms, pct), ...])`` shows one reply's breakdown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        self.bar = _Bar()
        col.addWidget(self.bar)
        self.legend = QLabel("No reply yet.")
        self.legend.setObjectName("breakdown-legend")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        col.addWidget(self.legend)

    @property
    def phases(self) -> list[tuple[str, float, float]]:
        return self.bar.phases

    def set_phases(self, phases: list[tuple[str, float, float]]) -> None:
        self.bar.phases = phases
        self.setToolTip("\n".join(f"{n}: {ms_text(ms)} ({pct:.1f}%)" for n, ms, pct in phases))
        self.legend.setText(" &nbsp; ".join(  # an entry never breaks across lines
            f"<span style='color:{PHASE_COLORS.get(n, '#777')}'>■</span>&nbsp;"
            + f"{n} {ms_text(ms)}".replace(" ", "&nbsp;") for n, ms, _pct in phases))
        self.bar.update()

    def labels(self) -> list[str]:
        """The figures shown (for tests): one per phase, in order."""
        return [f"{n} {ms_text(ms)}" for n, ms, _pct in self.bar.phases]
