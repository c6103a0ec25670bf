"""One message of the transcript: Markdown blocks rendered once, code that scrolls sideways,
and the growing block drawn line by line while a reply streams.

Renders state only. The cost of a streamed piece is the piece's: finished blocks are
appended to a document that only grows at its end (:class:`ProseView`), a code block grows
line by line in its own widget (:class:`CodeBlock`, which scrolls inside itself rather than
widening the message), and the growing paragraph is drawn by :class:`StreamingText`. While
the growing block is small its complete lines are also shown as Markdown (re-rendered at
each newline, at most ``LIVE_MARKDOWN_CHARS``), so lists and emphasis look right before the
block ends; past that it stays plain until it ends, and the whole reply is Markdown at the end.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSizeF, Qt
from PySide6.QtGui import (
    QFontDatabase,
    QGuiApplication,
    QResizeEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.markdown_stream import Block, BlockSplitter, is_fence
from app.streaming_text import StreamingText

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System", "error": "Error"}
LIVE_MARKDOWN_CHARS = 1500


class ProseView(QTextBrowser):
    """Finished Markdown blocks in one document that changes only at its end (QTextDocument
    then lays out only what was appended), plus a provisional rendering of the growing block
    that is replaced each time. Its height follows the document; it never scrolls."""

    def __init__(self, markdown: bool = True) -> None:
        super().__init__()
        self.markdown = markdown
        self.setOpenExternalLinks(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("background: transparent;")
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.blocks = 0
        self._provisional: int | None = None  # where the provisional rendering starts

    def append_block(self, markdown: str) -> None:
        self.clear_provisional()
        self._insert(markdown)
        self.blocks += 1

    def set_provisional(self, markdown: str) -> None:
        self.clear_provisional()
        self._provisional = self._end()
        self._insert(markdown)

    def clear_provisional(self) -> None:
        if self._provisional is None:
            return
        if self.blocks == 0:
            self.document().clear()
        else:
            cursor = QTextCursor(self.document())
            cursor.setPosition(self._provisional)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
        self._provisional = None

    def _end(self) -> int:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor.position()

    def _insert(self, text: str) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.document().isEmpty():  # a fresh block: no list or heading carried over
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        if self.markdown:
            cursor.insertMarkdown(text)
        else:
            cursor.insertText(text)

    def _fit(self, size: QSizeF) -> None:
        self.setFixedHeight(int(size.height()) + 2)


class CodeBlock(QFrame):
    """A fenced code block: monospace, never wrapped, its own horizontal scroll bar when a
    line is wider than the message. While streaming it grows a line at a time (the last,
    unfinished line is replaced as it grows)."""

    def __init__(self, language: str = "", code: str | None = None) -> None:
        super().__init__()
        self.setObjectName("code-block")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 2, 6, 4)
        col.setSpacing(0)
        header = QHBoxLayout()
        self.language = QLabel(language or "code")
        self.language.setStyleSheet("color: palette(mid);")
        header.addWidget(self.language)
        header.addStretch(1)
        copy = QPushButton("Copy code")
        copy.setFlat(True)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.code()))
        header.addWidget(copy)
        col.addLayout(header)
        self.edit = QPlainTextEdit()
        self.edit.setReadOnly(True)
        self.edit.setFrameShape(QFrame.Shape.NoFrame)
        self.edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.edit.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.edit.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.edit.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.edit.horizontalScrollBar().rangeChanged.connect(lambda *_: self._fit())
        col.addWidget(self.edit)
        self._lines = 1
        if code is not None:
            self.set_code(code)
        else:
            self._fit()

    def code(self) -> str:
        return self.edit.toPlainText()

    def set_code(self, code: str) -> None:
        self.edit.setPlainText(code)
        self._lines = max(1, code.count("\n") + 1)
        self._fit()

    def set_open_line(self, text: str) -> None:
        """Replace the last (unfinished) line's text."""
        cursor = QTextCursor(self.edit.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock,
                            QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text)

    def new_line(self) -> None:
        cursor = QTextCursor(self.edit.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertBlock()
        self._lines += 1
        self._fit()

    def drop_open_line(self) -> None:
        """The stream ended the block (its closing fence): drop the empty last line."""
        if self._lines > 1:
            cursor = QTextCursor(self.edit.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock,
                                QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.deletePreviousChar()
            self._lines -= 1
            self._fit()

    def _fit(self) -> None:
        metrics = self.edit.fontMetrics()
        bar = self.edit.horizontalScrollBar()
        extra = bar.sizeHint().height() if bar.maximum() > 0 else 0
        height = (self._lines * metrics.lineSpacing()
                  + int(2 * self.edit.document().documentMargin()) + 2 + extra)
        if height != self.edit.height():
            self.edit.setFixedHeight(height)


class MessageWidget(QFrame):
    """One message: who, its text, a metrics footer, a copy button.

    ``append`` (streaming) and ``set_text`` (history, corrections) keep ``raw`` as the
    Markdown source; ``finish`` renders what is still growing as Markdown once the reply
    has ended."""

    def __init__(self, role: str, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.raw = ""
        self.markdown = role == "assistant"
        self.setObjectName(f"message-{role}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
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
        self._body = QVBoxLayout()
        self._body.setSpacing(4)
        layout.addLayout(self._body)
        self.tail = StreamingText()
        self._body.addWidget(self.tail)
        self.footer = QLabel()
        self.footer.setObjectName("footer")
        self.footer.setWordWrap(True)
        self.footer.setStyleSheet("color: palette(mid);")
        self.footer.hide()
        layout.addWidget(self.footer)
        if role == "error":
            self.setStyleSheet("#message-error { border: 1px solid #c0392b; }")
        # A streaming message grows a line at a time: only the band where its bottom edge
        # was and is now is repainted (resizeEvent), not the whole message (see _Column).
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        self._reset()
        if text or role != "assistant":
            self.set_text(text)
        else:
            self.tail.set_text("…")  # waiting for the first token

    # -- content ---------------------------------------------------------------------------
    def _reset(self) -> None:
        for w in self.segments():
            self._body.removeWidget(w)
            w.deleteLater()
        self._splitter = BlockSplitter()
        self._prose: ProseView | None = None  # the last prose segment, if it is the last
        self._code: CodeBlock | None = None  # the code block still growing
        self._code_lines = 0  # its complete lines shown
        self._covered = 0  # growing lines shown as provisional Markdown
        self.tail.clear()
        self.raw = ""

    def segments(self) -> list[QWidget]:
        """The rendered parts, in order (the streaming tail excluded)."""
        items = (self._body.itemAt(i).widget() for i in range(self._body.count()))
        return [w for w in items if w is not None and w is not self.tail]

    def set_text(self, text: str) -> None:
        if self.markdown and text.startswith(self.raw) and self.raw:
            self.append(text[len(self.raw):])
            return
        self._reset()
        if not self.markdown:
            self.raw = text
            view = self._add(ProseView(markdown=False))
            view.append_block(text)
            return
        self.append(text)

    def append(self, piece: str) -> None:
        if not piece:
            return
        if not self.raw and self.tail.text() == "…":
            self.tail.clear()
        self.raw += piece
        splitter = self._splitter
        finished = splitter.feed(piece)
        for block in finished:
            self._add_block(block)
        if splitter.in_code:
            self._grow_code()
        elif splitter.continued and not finished:
            if "\n" in piece and splitter.chars <= LIVE_MARKDOWN_CHARS:
                self._provisional()
                self.tail.set_text(splitter.current_line)
            else:
                self.tail.append(piece)
        else:  # a block started inside this piece: its text is this piece's
            lines = splitter.growing_lines
            if lines and splitter.chars <= LIVE_MARKDOWN_CHARS:
                self._provisional()
            self.tail.set_text("\n".join([*lines[self._covered:], splitter.current_line]))

    def finish(self) -> None:
        """The reply ended: render the growing block as Markdown."""
        for block in self._splitter.finish():
            self._add_block(block)
        self.tail.clear()

    def _add(self, widget: QWidget) -> QWidget:
        self._body.insertWidget(self._body.count() - 1, widget)  # the tail stays last
        return widget

    def _prose_view(self) -> ProseView:
        if self._prose is None:
            self._prose = ProseView()
            self._add(self._prose)
        return self._prose

    def _provisional(self) -> None:
        lines = self._splitter.growing_lines
        self._prose_view().set_provisional("\n".join(lines))
        self._covered = len(lines)

    def _add_block(self, block: Block) -> None:
        self.tail.clear()
        self._covered = 0
        if block.kind == "prose":
            self._prose_view().append_block(block.text)
            return
        if self._code is not None:  # it grew here: only the last line changes
            self._code.set_open_line("")
            self._code.drop_open_line()
            if self._code.code() != block.code:
                self._code.set_code(block.code)
        else:
            self._add(CodeBlock(block.language, block.code))
        self._code, self._code_lines, self._prose = None, 0, None

    def _grow_code(self) -> None:
        splitter = self._splitter
        lines = splitter.growing_lines  # the opening fence first
        if self._code is None:
            if self._prose is not None:
                self._prose.clear_provisional()
            self._code = CodeBlock(Block("code", lines[0]).language)
            self._add(self._code)
            self._prose = None
            self._code_lines = 1
            self.tail.clear()
        for line in lines[self._code_lines:]:
            self._code.set_open_line(line)
            self._code.new_line()
        self._code_lines = len(lines)
        current = splitter.current_line
        self._code.set_open_line("" if is_fence(current) else current)

    def rendered_text(self) -> str:
        """The plain text shown, part by part (for tests)."""
        parts = []
        for w in self.segments():
            parts.append(w.code() if isinstance(w, CodeBlock) else w.toPlainText())
        if self.tail.text():
            parts.append(self.tail.text())
        return "\n\n".join(parts)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        old, new = event.oldSize(), event.size()
        if old.width() != new.width():
            self.update()
        elif old.height() != new.height():
            # The frame's old bottom edge is now inside the message: repaint from above it
            # (the bottom margin and the frame) down to the new edge.
            top = min(old.height(), new.height()) - self.layout().contentsMargins().bottom() - 4
            self.update(QRect(0, max(0, top), new.width(), new.height() - max(0, top)))

    def set_footer(self, text: str) -> None:
        self.footer.setText(text)
        self.footer.setVisible(bool(text))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.raw)
