"""The main window: chat list, transcript, input, status bar and menus.

It wires intent to the core and renders what comes back; every blocking call goes through
:class:`Background` (history, files) or :class:`EngineBridge` (the engine).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.bridge import Background, EngineBridge
from app.chat_list import ChatList
from app.chat_view import ChatView, footer_text
from app.documents_pane import DocumentsPane
from app.menus import build_menus
from app.server_dialog import install_server_menu
from app.tools_menu import chat_sampling, install_tools
from core.chat.conversation import Conversation, Turn
from core.chat.history import HistoryStore
from core.engine import DoneEvent, EngineConfig, ErrorEvent
from core.engine.api import LoadedModelInfo
from core.settings import Settings, save_settings

SAVE_INTERVAL_MS = 500


class MainWindow(QMainWindow):
    """Signals: ``replyFinished(object)`` after each reply (tests and the panel use it)."""

    replyFinished = Signal(object)
    modelLoaded = Signal(object)
    panelReady = Signal(object)

    def __init__(self, settings: Settings, history: HistoryStore, bridge: EngineBridge) -> None:
        super().__init__()
        # The GUI thread shares the GIL with the engine bridge, download, history and
        # telemetry threads; Python hands the GIL over every 5 ms by default, a third of a
        # frame. 1 ms bounds how long a paint or a keypress waits for it.
        sys.setswitchinterval(0.001)
        self.settings, self.history, self.bridge = settings, history, bridge
        self.io = Background("history", self)
        self.conversation = Conversation()
        self.loaded: LoadedModelInfo | None = None
        self._reply: Turn | None = None
        self._dirty = False
        self.error_dialog: QMessageBox | None = None
        self.setWindowTitle("Hearth")
        self.resize(1100, 760)
        self.setMinimumSize(800, 560)
        self._build()
        build_menus(self)
        self.documents = DocumentsPane(self)  # View › Documents; sends with collections
        install_tools(self)  # Tools: Benchmark…, Cost…, a profile per chat
        install_server_menu(self)  # Server › Start local server (app/server_dialog.py)
        bridge.loaded.connect(self._on_loaded)
        bridge.loadFailed.connect(self._on_load_failed)
        bridge.textReady.connect(self._on_text)
        bridge.finished.connect(self._on_finished)
        bridge.busyChanged.connect(self._update_buttons)
        self._saver = QTimer(self)
        self._saver.setInterval(SAVE_INTERVAL_MS)
        self._saver.timeout.connect(self._save_partial)
        if settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(settings.window_geometry.encode()))
        self.refresh_chats()
        self._update_buttons()
        self.panel = None
        QTimer.singleShot(0, self._start_panel)

    # -- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        self.chat_list = ChatList()
        self.chat_list.chatSelected.connect(self.open_chat)
        self.chat_list.newRequested.connect(self.new_chat)
        self.chat_list.renameRequested.connect(self.rename_chat)
        self.chat_list.deleteRequested.connect(self.delete_chat)
        self.chat_list.searchChanged.connect(lambda _text: self.refresh_chats())
        self.view = ChatView()
        self.system_prompt = QLineEdit()
        self.system_prompt.setPlaceholderText("System prompt for this chat (optional)")
        self.system_prompt.editingFinished.connect(self._system_prompt_edited)
        self.input = QPlainTextEdit()
        self.input.setObjectName("input")
        self.input.setPlaceholderText("Message… (Ctrl+Enter to send)")
        self.input.setFixedHeight(90)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.regen_button = QPushButton("Regenerate")
        self.regen_button.clicked.connect(self.regenerate)
        self.edit_button = QPushButton("Edit last")
        self.edit_button.clicked.connect(self.edit_last)
        buttons = QHBoxLayout()
        for b in (self.edit_button, self.regen_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)
        center = QWidget()
        col = QVBoxLayout(center)
        col.addWidget(self.system_prompt)
        col.addWidget(self.view, 1)
        col.addWidget(self.input)
        col.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.chat_list)
        splitter.addWidget(center)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 860])
        self.setCentralWidget(splitter)
        self.model_label = QLabel("No model")
        self.place_label = QLabel("")
        self.speed_label = QLabel("")
        for w in (self.model_label, self.place_label, self.speed_label):
            self.statusBar().addPermanentWidget(w)

    # -- latency and power panel -------------------------------------------------------
    def _start_panel(self) -> None:
        """Probe power sources off the GUI thread (NVML start-up can take a while), then dock
        the panel; the window is already on screen meanwhile."""
        from core.telemetry import TelemetrySampler

        self.io.run(lambda: TelemetrySampler(hz=8).start(), self._dock_panel)

    def _dock_panel(self, sampler) -> None:
        from app.metrics_panel import MetricsPanel
        from core.telemetry import CostSettings

        prices = CostSettings(usd_per_kwh=self.settings.electricity_price_kwh)
        self.panel = MetricsPanel(self.bridge, sampler, prices, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        self.replyFinished.connect(self.panel.finish)
        self.view_menu.addAction(self.panel.toggleViewAction())
        self.panel.toggleViewAction().setShortcut(QKeySequence("Ctrl+L"))
        self.panelReady.emit(self.panel)

    # -- model -------------------------------------------------------------------------
    def engine_config(self, model_path: Path | None) -> EngineConfig:
        return self.settings.engine_config(model_path)

    def load_model(self, path: Path | None) -> None:
        """Load a model (None: the bundled default) in the worker; the status bar follows."""
        self.model_label.setText("Loading model…")
        self.place_label.setText("")
        self.bridge.load(self.engine_config(path))

    def _on_loaded(self, loaded: LoadedModelInfo) -> None:
        self.loaded = loaded
        self.model_label.setText(loaded.model_name)
        self.place_label.setText(loaded.placement)
        self.place_label.setToolTip(loaded.message)
        if loaded.fell_back:
            self.statusBar().showMessage(loaded.message, 15000)
        self.settings.last_model = loaded.path
        self._update_buttons()
        self.modelLoaded.emit(loaded)

    def _on_load_failed(self, message: str) -> None:
        """Tell the user (window-modal, non-blocking: the app stays usable behind it)."""
        self.model_label.setText(self.loaded.model_name if self.loaded else "No model")
        self._update_buttons()
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not load the model", message,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("load-error")
        box.open()
        self.error_dialog = box

    def open_model_picker(self) -> None:
        from app.model_picker import ModelPicker

        picker = ModelPicker(self.settings, self)
        picker.draftChosen.connect(lambda draft: setattr(self.settings, "draft", draft))
        picker.modelChosen.connect(lambda path: self.load_model(Path(path)))
        picker.open()

    def open_settings(self) -> None:
        from app.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            old = self.settings
            self.settings = dialog.result_settings()
            self.io.run(lambda s=self.settings: save_settings(s))
            if self.loaded and (replace(old, extra={}) != replace(self.settings, extra={})):
                engine_keys = ("n_ctx", "threads", "gpu_layers")
                if any(getattr(old, k) != getattr(self.settings, k) for k in engine_keys):
                    self.load_model(Path(self.loaded.path))

    # -- chats -------------------------------------------------------------------------
    def refresh_chats(self) -> None:
        query = self.chat_list.search_text()
        self.io.run(lambda: self.history.list_chats(query), self.chat_list.set_chats)

    def new_chat(self) -> None:
        if self.bridge.busy:
            return
        self.conversation = Conversation()
        self.documents.set_chat(None)
        self.view.clear()
        self.system_prompt.clear()
        self.input.setFocus()
        self._update_buttons()

    def open_chat(self, chat_id: int) -> None:
        if self.bridge.busy or chat_id == self.conversation.chat_id:
            return

        def fetch() -> tuple[object, list]:
            return self.history.get_chat(chat_id), self.history.messages(chat_id)

        self.io.run(fetch, lambda result: self._show_chat(*result))

    def _show_chat(self, chat, messages) -> None:
        if chat is None:
            return
        conv = Conversation(chat.id, chat.title, chat.system_prompt)
        self.view.clear()
        for m in messages:
            role = "error" if m.error and not m.content else m.role
            conv.turns.append(Turn(role, m.content or (m.error or ""), m.id, m.metrics,
                                   m.finish_reason, m.complete))
            widget = self.view.add(role, m.content or (m.error or ""))
            widget.set_footer(footer_text(m.metrics, m.finish_reason))
            if m.error and m.content:
                conv.turns.append(Turn("error", m.error))
                self.view.add("error", m.error)
        self.conversation = conv
        self.documents.set_chat(chat.id)
        self.system_prompt.setText(chat.system_prompt)
        self._update_buttons()

    def rename_chat(self, chat_id: int | None) -> None:
        from PySide6.QtWidgets import QInputDialog

        if chat_id is None:
            return
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:")
        if ok and title.strip():
            if chat_id == self.conversation.chat_id:
                self.conversation.title = title.strip()
            self.io.run(lambda: self.history.update_chat(chat_id, title=title.strip()),
                        lambda _: self.refresh_chats())

    def delete_chat(self, chat_id: int | None) -> None:
        if chat_id is None or self.bridge.busy:
            return
        self.io.run(lambda: self.history.delete_chat(chat_id), lambda _: self.refresh_chats())
        if chat_id == self.conversation.chat_id:
            self.new_chat()

    def _system_prompt_edited(self) -> None:
        text = self.system_prompt.text()
        self.conversation.system_prompt = text
        chat_id = self.conversation.chat_id
        if chat_id is not None:
            self.io.run(lambda: self.history.update_chat(chat_id, system_prompt=text))

    # -- sending -----------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.bridge.busy or self.loaded is None:
            return
        self.input.clear()
        conv = self.conversation
        conv.system_prompt = self.system_prompt.text()
        user = conv.add_user(text)
        self.view.add("user", text)
        if conv.chat_id is None:
            conv.title = conv.suggested_title()
            chat = self.history.create_chat  # bound now, called on the history thread

            def create() -> None:
                conv.chat_id = chat(conv.title, conv.system_prompt, self.loaded.model_name).id

            self.io.run(create, lambda _: self.refresh_chats())
        self.io.run(lambda: setattr(user, "message_id", self.history.add_message(
            conv.chat_id, "user", text)))
        self._start_reply()

    def _start_reply(self) -> None:
        conv = self.conversation
        request = conv.request(chat_sampling(self.settings, conv.chat_id),
                               self.settings.max_tokens)
        reply = conv.start_reply()
        self._reply = reply
        self.view.add("assistant", "")
        self.io.run(lambda: setattr(reply, "message_id", self.history.add_message(
            conv.chat_id, "assistant", "", complete=False)))
        self._saver.start()
        self.documents.generate(request, self.bridge.generate)

    def _on_text(self, text: str) -> None:
        if self._reply is None or self.view.last is None:
            return
        self._reply.content += text
        self.view.last.append(text)
        self._dirty = True

    def _save_partial(self) -> None:
        reply = self._reply
        if reply is None or not self._dirty:
            return
        self._dirty = False
        content = reply.content
        self.io.run(lambda: self.history.update_message(reply.message_id, content,
                                                        complete=False))

    def _on_finished(self, final: DoneEvent | ErrorEvent) -> None:
        self._saver.stop()
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if isinstance(final, DoneEvent):
            reply.content, reply.complete = final.text, True
            reply.metrics, reply.finish_reason = final.metrics.to_dict(), final.finish_reason
            if self.view.last is not None:
                if self.view.last.raw != final.text:  # the stream has usually shown it all
                    self.view.last.set_text(final.text)
                self.view.last.set_footer(footer_text(reply.metrics, final.finish_reason))
            self.speed_label.setText(f"{final.metrics.decode_tok_s:.1f} tok/s")
            error = None
        else:
            reply.content, reply.complete = final.partial_text, True
            error = final.message
            self.view.add("error", final.message)
            self.conversation.turns.append(Turn("error", final.message))
        content, metrics, finish = reply.content, reply.metrics, reply.finish_reason
        self.io.run(lambda: self.history.update_message(
            reply.message_id, content, complete=True, finish_reason=finish, error=error,
            metrics=metrics))
        self._update_buttons()
        self.replyFinished.emit(final)

    def stop(self) -> None:
        if self.bridge.busy:
            self.bridge.cancel()

    def regenerate(self) -> None:
        if self.bridge.busy or self.loaded is None:
            return
        removed = self.conversation.truncate_for_regenerate()
        if not removed:
            return
        self._forget(removed)
        self._start_reply()

    def edit_last(self) -> None:
        if self.bridge.busy:
            return
        text, removed = self.conversation.truncate_for_edit()
        if removed:
            self._forget(removed)
            self.input.setPlainText(text)
            self.input.setFocus()

    def _forget(self, removed: list[Turn]) -> None:
        """Drop removed turns from the view and their rows from the history."""
        for _ in removed:
            self.view.remove_last()
        chat_id = self.conversation.chat_id
        first = next((t for t in removed if t.message_id is not None), None)
        if chat_id is not None and first is not None:
            self.io.run(lambda: self.history.delete_messages_from(chat_id, first.message_id))
        self._update_buttons()

    def _update_buttons(self, *_: object) -> None:
        busy = self.bridge.busy
        ready = self.loaded is not None and not busy
        has_user = self.conversation.last_user_index() is not None
        self.send_button.setEnabled(ready)
        self.stop_button.setEnabled(busy and self._reply is not None)
        self.regen_button.setEnabled(ready and has_user)
        self.edit_button.setEnabled(not busy and has_user)

    # -- lifetime ----------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.panel is not None:
            self.panel.close_sampler()
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        settings = self.settings
        self.io.run(lambda: save_settings(settings))
        self.io.shutdown()
        self.documents.shutdown()
        super().closeEvent(event)
