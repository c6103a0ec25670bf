"""The main window's menus: every command with its shortcut, in one place."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QKeySequence


def build_menus(window: Any) -> None:
    """Add File, Chat, View, Settings and Help menus to the main window.
    ``window`` is the MainWindow (typed loosely: the window imports this module)."""
    def action(menu: Any, text: str, slot: Any,
               shortcut: QKeySequence | str | None = None) -> QAction:
        act = QAction(text, window)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    file_menu = window.menuBar().addMenu("&File")
    action(file_menu, "&New chat", window.new_chat, QKeySequence.StandardKey.New)
    window.open_model_action = action(file_menu, "&Models…", window.open_model_picker, "Ctrl+M")
    file_menu.addSeparator()
    action(file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    chat_menu = window.menuBar().addMenu("&Chat")
    action(chat_menu, "&Send", window.send, "Ctrl+Return")
    action(chat_menu, "S&top", window.stop, "Esc")
    action(chat_menu, "&Regenerate", window.regenerate, "Ctrl+R")
    action(chat_menu, "&Edit last message", window.edit_last, "Ctrl+E")
    action(chat_menu, "Re&name…", lambda: window.rename_chat(window.conversation.chat_id), "F2")
    action(chat_menu, "&Delete", lambda: window.delete_chat(window.conversation.chat_id))
    window.view_menu = window.menuBar().addMenu("&View")
    toggle = window.panel.toggleViewAction()
    toggle.setShortcut(QKeySequence("Ctrl+L"))
    window.view_menu.addAction(toggle)
    settings_menu = window.menuBar().addMenu("&Settings")
    action(settings_menu, "&Preferences…", window.open_settings, "Ctrl+,")
    action(settings_menu, "&Engines…", lambda: _engines(window))
    help_menu = window.menuBar().addMenu("&Help")
    action(help_menu, "Open &log folder", window.open_log_folder)


def _engines(window: Any) -> None:
    from app.engines_dialog import open_engines  # its network stack loads when first used

    window.engines_dialog = open_engines(window)

