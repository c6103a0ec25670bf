"""The main window's widgets and how the width is shared: chat first.

The transcript gets most of the width; the chat list is a narrow column on the left and the
latency panel a dock on the right of about a third (collapsible, and remembered with the
window's state). ``build_central`` only builds and places; the window wires intent.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.chat_list import ChatList
from app.chat_view import ChatView
from app.message_input import MessageInput

CHAT_LIST_WIDTH = 220
DOCK_SHARE = 0.3  # of the window's width, within DOCK_MIN..DOCK_MAX
DOCK_MIN, DOCK_MAX = 300, 520


def dock_width(window_width: int) -> int:
    """The panel's first width: about a third of the window, never most of it."""
    return max(DOCK_MIN, min(DOCK_MAX, int(window_width * DOCK_SHARE)))


def build_central(window: Any) -> None:
    """Create the chat list, transcript, system prompt, message box, buttons and status
    labels on ``window`` (the MainWindow, typed loosely: it imports this module)."""
    window.chat_list = ChatList()
    window.chat_list.chatSelected.connect(window.open_chat)
    window.chat_list.newRequested.connect(window.new_chat)
    window.chat_list.renameRequested.connect(window.rename_chat)
    window.chat_list.deleteRequested.connect(window.delete_chat)
    window.chat_list.searchChanged.connect(lambda _text: window.refresh_chats())
    window.view = ChatView()
    window.system_prompt = QLineEdit()
    window.system_prompt.setPlaceholderText("System prompt for this chat (optional)")
    window.system_prompt.editingFinished.connect(window._system_prompt_edited)
    window.input = MessageInput(window.settings.send_with)
    window.input.setFixedHeight(84)
    window.input.submitted.connect(window.send)
    window.send_button = QPushButton("Send")
    window.send_button.clicked.connect(window.send)
    window.stop_button = QPushButton("Stop")
    window.stop_button.clicked.connect(window.stop)
    window.regen_button = QPushButton("Regenerate")
    window.regen_button.clicked.connect(window.regenerate)
    window.edit_button = QPushButton("Edit last")
    window.edit_button.clicked.connect(window.edit_last)
    for button in (window.send_button, window.stop_button, window.regen_button,
                   window.edit_button):
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click leaves focus in the box
    buttons = QHBoxLayout()
    for b in (window.edit_button, window.regen_button):
        buttons.addWidget(b)
    buttons.addStretch(1)
    buttons.addWidget(window.stop_button)
    buttons.addWidget(window.send_button)
    center = QWidget()
    center.setObjectName("chat-column")
    col = QVBoxLayout(center)
    col.setContentsMargins(4, 4, 4, 4)
    col.addWidget(window.system_prompt)
    col.addWidget(window.view, 1)
    col.addWidget(window.input)
    col.addLayout(buttons)
    window.chat_column = col
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.setObjectName("main-splitter")
    splitter.addWidget(window.chat_list)
    splitter.addWidget(center)
    splitter.setStretchFactor(0, 0)
    splitter.setStretchFactor(1, 1)
    splitter.setCollapsible(1, False)
    splitter.setSizes([CHAT_LIST_WIDTH, 1000])
    window.splitter = splitter
    window.setCentralWidget(splitter)
    window.model_label = QLabel("No model")
    window.place_label = QLabel("")
    window.speed_label = QLabel("")
    for w in (window.model_label, window.place_label, window.speed_label):
        window.statusBar().addPermanentWidget(w)
