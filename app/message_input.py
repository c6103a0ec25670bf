"""The message box: Enter sends, Shift+Enter starts a new line (as LM Studio, ChatGPT, Jan
and GPT4All do); with the ``ctrl+enter`` setting, Enter makes a new line and Ctrl+Enter
sends, for people with that habit. Ctrl+Enter always sends."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

SEND_KEYS = {"enter": "Enter sends, Shift+Enter for a new line",
             "ctrl+enter": "Ctrl+Enter sends, Enter for a new line"}


class MessageInput(QPlainTextEdit):
    """Signals: ``submitted()`` when the user asks to send."""

    submitted = Signal()

    def __init__(self, send_with: str = "enter", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("input")
        self.setTabChangesFocus(True)
        self.set_send_with(send_with)

    def set_send_with(self, send_with: str) -> None:
        self.send_with = send_with if send_with in SEND_KEYS else "enter"
        hint = "Enter to send, Shift+Enter for a new line" if self.send_with == "enter" \
            else "Ctrl+Enter to send"
        self.setPlaceholderText(f"Message… ({hint})")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            ctrl = mods == Qt.KeyboardModifier.ControlModifier
            plain = mods == Qt.KeyboardModifier.NoModifier
            if ctrl or (plain and self.send_with == "enter"):
                event.accept()
                self.submitted.emit()
                return
            if mods & Qt.KeyboardModifier.ShiftModifier or plain:
                self.insertPlainText("\n")  # Shift+Enter (or Enter in the Ctrl+Enter habit)
                event.accept()
                return
        super().keyPressEvent(event)
