"""The chat transcript: one widget per message, Markdown rendered, following the bottom.

Renders state and emits intent only: the main window decides what a message says. A
message's text is re-rendered as a whole when it grows (at most once per frame, the bridge
coalesces), which keeps Markdown constructs that span tokens (code fences) right.
"""

from __future__ import annotations

from PySide6.QtCore import QSizeF, Qt, Signal
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.engine.metrics import RequestMetrics

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System", "error": "Error"}


def footer_text(metrics: dict | RequestMetrics | None, finish: str | None = None,
                template: str | None = None) -> str:
    """The per-message footer: TTFT, speed, tokens, speculation when on."""
    if metrics is None:
        return ""
    m = metrics if isinstance(metrics, dict) else metrics.to_dict()
    parts = [f"TTFT {m.get('ttft_ms', 0):.0f} ms", f"{m.get('decode_tok_s', 0):.1f} tok/s",
             f"{m.get('decode_tokens', 0)} tokens",
             f"prompt {m.get('prompt_tokens', 0)} ({m.get('cached_tokens', 0)} cached)"]
    spec = m.get("speculative")
    if spec:
        parts.append(f"accepted {100 * spec.get('acceptance_rate', 0):.0f}%")
    if finish and finish not in ("eos", "stop"):
        parts.append(finish)
    return " · ".join(parts)


def split_blocks(text: str) -> tuple[list[str], str]:
    """Markdown ``text`` as its finished blocks and the block still growing.

    A block ends at a blank line outside a code fence; a fenced block stays whole. Streaming
    re-renders only the growing block, so an update costs the same at token 2,000 as at
    token 20 (re-rendering a whole 10,000-character reply took ~20 ms, a frame and more).
    """
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    return blocks, "\n".join(current)


class _FrozenBlocks(QTextBrowser):
    """The finished blocks of a message in one document that only ever grows at its end:
    QTextDocument lays out just the appended blocks, and the transcript's layout sees one
    widget, so its cost no longer grows with the reply (200 labels cost 33 ms a frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.setOpenExternalLinks(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("background: transparent;")
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.blocks = 0

    def append_block(self, markdown: str) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self.blocks:
            cursor.insertBlock()
        cursor.insertMarkdown(markdown)
        self.blocks += 1

    def reset(self) -> None:
        self.document().clear()
        self.blocks = 0

    def _fit(self, size: QSizeF) -> None:
        self.setFixedHeight(int(size.height()) + 2)


def _markdown_label() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.MarkdownText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    label.setOpenExternalLinks(True)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return label


class MessageWidget(QFrame):
    """One message: who, the Markdown text (one label per finished block plus one for the
    block still growing), a metrics footer, a copy button."""

    def __init__(self, role: str, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.raw = text
        self.setObjectName(f"message-{role}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        header = QHBoxLayout()
        self.title = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        header.addWidget(self.title)
        header.addStretch(1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setFlat(True)
        self.copy_button.setToolTip("Copy this message as Markdown")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self._frozen: list[str] = []
        self.done_blocks = _FrozenBlocks()
        self.done_blocks.hide()
        layout.addWidget(self.done_blocks)
        self.body = _markdown_label()  # the growing (last) block
        layout.addWidget(self.body)
        self.footer = QLabel()
        self.footer.setObjectName("footer")
        self.footer.setStyleSheet("color: palette(mid);")
        self.footer.hide()
        layout.addWidget(self.footer)
        if role == "error":
            self.setStyleSheet("#message-error { border: 1px solid #c0392b; }")
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self.raw = text
        blocks, tail = split_blocks(text)
        n = len(self._frozen)
        if blocks[:n] != self._frozen:  # not an extension of what is shown: start over
            self.done_blocks.reset()
            self._frozen, n = [], 0
        for block in blocks[n:]:
            self.done_blocks.append_block(block)
            self._frozen.append(block)
        self.done_blocks.setVisible(bool(self._frozen))
        self.body.setText(tail if (tail or blocks) else "…")
        self.body.setVisible(bool(tail) or not blocks)

    def rendered_text(self) -> str:
        """The plain text shown, finished blocks then the growing one (for tests)."""
        parts = [self.done_blocks.toPlainText()] if self._frozen else []
        if self.body.isVisibleTo(self):
            parts.append(self.body.text())
        return "\n\n".join(parts)

    def append(self, text: str) -> None:
        self.set_text(self.raw + text)

    def set_footer(self, text: str) -> None:
        self.footer.setText(text)
        self.footer.setVisible(bool(text))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.raw)


class ChatView(QScrollArea):
    """The transcript. Signals: none (buttons act on their own message)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setObjectName("chat-view")
        inner = QWidget()
        self._layout = QVBoxLayout(inner)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self.messages: list[MessageWidget] = []
        self.follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range)

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

    def _on_range(self, _minimum: int, maximum: int) -> None:
        if self.follow:
            self.verticalScrollBar().setValue(maximum)
