"""The chat transcript: one widget per message, following the bottom while a reply streams.

Renders state and emits intent only: the main window decides what a message says. The
transcript never scrolls sideways: every part of a message takes the width it is given
(long words wrap anywhere; code blocks scroll inside themselves, see ``app/message_view``).
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.message_view import MessageWidget
from app.scroll_bar import LazyBar
from core.engine.metrics import RequestMetrics

__all__ = ["ChatView", "MessageWidget", "footer_text"]


def footer_text(metrics: dict | RequestMetrics | None, finish: str | None = None,
                template: str | None = None) -> str:
    """The per-message footer: TTFT, speed, tokens, speculation when on."""
    if metrics is None:
        return ""
    m = metrics if isinstance(metrics, dict) else metrics.to_dict()
    tokens = m.get("decode_tokens", 0)
    parts = [f"TTFT {m.get('ttft_ms', 0):.0f} ms", f"{m.get('decode_tok_s', 0):.1f} tok/s",
             f"{tokens} token{'' if tokens == 1 else 's'}",
             f"prompt {m.get('prompt_tokens', 0)} ({m.get('cached_tokens', 0)} cached)"]
    spec = m.get("speculative")
    if spec:
        parts.append(f"accepted {100 * spec.get('acceptance_rate', 0):.0f}%")
    if finish and finish not in ("eos", "stop"):
        parts.append(finish)
    return " · ".join(parts)


class _Column(QWidget):
    """The scrolled column: it takes the viewport's width, whatever its children ask.

    It grows by a line at a time while a reply streams and scrolls up by as much. Opaque
    (it fills its own background), Qt moves it by copying what is already on screen and
    paints only the strip that scrolled in; with static contents a taller column repaints
    only its new part. Otherwise each new line repainted the whole transcript, and on a
    long reply, where the view follows the bottom, that was most of the window's cost per
    line (issue 18)."""

    def __init__(self) -> None:
        super().__init__()
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setAutoFillBackground(True)
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.update()  # static contents are only right while the width stays


class ChatView(QScrollArea):
    """The transcript. Signals: ``changed()`` when a message is added."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setObjectName("chat-view")
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = _Column()
        self._layout = QVBoxLayout(inner)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self.messages: list[MessageWidget] = []
        self.follow = True
        bar = LazyBar()
        self.setVerticalScrollBar(bar)
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range)
        # Following the bottom waits until what the growth dirtied has been painted (a zero
        # timer): Qt scrolls by copying the pixels on screen only when none of them is
        # dirty, and repaints the whole view otherwise (_Column).
        self._to_bottom = QTimer(self)
        self._to_bottom.setSingleShot(True)
        self._to_bottom.setInterval(0)
        self._to_bottom.timeout.connect(self._scroll_to_bottom)

    def clear(self) -> None:
        for widget in self.messages:
            widget.setParent(None)
            widget.deleteLater()
        self.messages = []
        self.follow = True

    def add(self, role: str, text: str = "") -> MessageWidget:
        widget = MessageWidget(role, text)
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self.messages.append(widget)
        self.follow = True
        self.changed.emit()
        return widget

    def remove_last(self) -> None:
        if self.messages:
            widget = self.messages.pop()
            widget.setParent(None)
            widget.deleteLater()

    @property
    def last(self) -> MessageWidget | None:
        return self.messages[-1] if self.messages else None

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self.follow = value >= bar.maximum() - 4

    def _on_range(self, _minimum: int, _maximum: int) -> None:
        if self.follow:
            self._to_bottom.start()

    def _scroll_to_bottom(self) -> None:
        if self.follow:
            bar = self.verticalScrollBar()
            with bar.deferred() if isinstance(bar, LazyBar) else contextlib.nullcontext():
                bar.setValue(bar.maximum())

