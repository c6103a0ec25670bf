"""The list of chats: search, new, rename, delete. Renders what it is given; emits intent."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.chat.history import Chat


class ChatList(QWidget):
    """Signals: ``chatSelected(int)``, ``newRequested()``, ``renameRequested(int)``,
    ``deleteRequested(int)``, ``searchChanged(str)``."""

    chatSelected = Signal(int)
    newRequested = Signal()
    renameRequested = Signal(int)
    deleteRequested = Signal(int)
    searchChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.new_button = QPushButton("New chat")
        self.new_button.clicked.connect(self.newRequested)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.searchChanged)
        self.list = QListWidget()
        self.list.setObjectName("chat-list")
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)

    def search_text(self) -> str:
        return self.search.text().strip()

    def set_chats(self, chats: list[Chat]) -> None:
        self.list.clear()
        for chat in chats:
            item = QListWidgetItem(chat.title)
            item.setData(Qt.ItemDataRole.UserRole, chat.id)
            item.setToolTip(chat.title)
            self.list.addItem(item)

    def select(self, chat_id: int | None) -> None:
        """Show ``chat_id`` as the current chat (None: none); emits nothing."""
        self.list.blockSignals(True)
        try:
            self.list.clearSelection()
            for i in range(self.list.count()):
                item = self.list.item(i)
                if item.data(Qt.ItemDataRole.UserRole) == chat_id:
                    self.list.setCurrentItem(item)
                    break
        finally:
            self.list.blockSignals(False)

    def chat_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _activated(self, item: QListWidgetItem) -> None:
        self.chatSelected.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        chat_id = int(item.data(Qt.ItemDataRole.UserRole))
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.renameRequested.emit(chat_id))
        menu.addAction("Delete", lambda: self.deleteRequested.emit(chat_id))
        menu.exec(self.list.mapToGlobal(pos))
