"""The main window: chat list, transcript, message box, the latency panel dock, status bar.

It renders state and emits intent: the chat rules (what a request holds, regenerate, edit,
what is saved when) are :class:`core.chat.session.ChatSession`'s; blocking calls go through
:class:`Background` (history, files) or :class:`EngineBridge` (the engine). Every failure
reaches the user (a status-bar line, or a dialog for a model that does not load) and the log.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QGuiApplication, QShowEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox, QToolButton

from app.bridge import Background, EngineBridge
from app.chat_view import footer_text
from app.documents_pane import DocumentsPane
from app.layout import build_central, dock_width
from app.menus import build_menus
from app.metrics_panel import MetricsPanel
from app.responsiveness import settle_heap
from app.server_dialog import install_server_menu
from app.tools_menu import chat_sampling, install_tools
from core.chat.conversation import Conversation, Turn
from core.chat.history import HistoryStore
from core.chat.session import ChatSession
from core.engine import DoneEvent, EngineConfig, ErrorEvent
from core.engine.api import LoadedModelInfo
from core.settings import Settings, save_settings

log = logging.getLogger("hearth.app")
SAVE_INTERVAL_MS = 500
ERROR_SHOWN_MS = 20_000


class MainWindow(QMainWindow):
    """Signals: ``replyFinished(object)`` after each reply (tests and the panel use it);
    ``modelLoaded(LoadedModelInfo)``; ``chatShown(int)`` once a saved chat is on screen;
    ``errorShown(str)`` whenever an error is put in front of the user."""

    replyFinished = Signal(object)
    modelLoaded = Signal(object)
    panelReady = Signal(object)
    chatShown = Signal(int)
    errorShown = Signal(str)

    def __init__(self, settings: Settings, history: HistoryStore, bridge: EngineBridge) -> None:
        super().__init__()
        # The GUI thread shares the GIL with the engine bridge, download, history and
        # telemetry threads; Python hands the GIL over every 5 ms by default, a third of a
        # frame. 1 ms bounds how long a paint or a keypress waits for it.
        sys.setswitchinterval(0.001)
        self.settings, self.history, self.bridge = settings, history, bridge
        self.io = Background("history", self, report=self.report_error)
        self.session = ChatSession(history, self.io.persist, self.report_error)
        self.loaded: LoadedModelInfo | None = None
        self.error_dialog: QMessageBox | None = None
        self.welcome = None  # the first-run card (app.first_run), gone after a message
        self.setWindowTitle("Hearth")
        self._first_size()
        self.setMinimumSize(800, 560)
        build_central(self)
        self.panel = MetricsPanel(bridge, None, None, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        build_menus(self)
        self.documents = DocumentsPane(self)  # View › Documents; sends with collections
        install_tools(self)  # Tools: Benchmark…, Cost…, a profile per chat
        install_server_menu(self)  # Server › Start local server (app/server_dialog.py)
        panel_button = QToolButton()
        panel_button.setObjectName("panel-toggle")
        panel_button.setDefaultAction(self.panel.toggleViewAction())
        panel_button.setAutoRaise(True)
        self.statusBar().addPermanentWidget(panel_button)
        bridge.loaded.connect(self._on_loaded)
        bridge.loadFailed.connect(self._on_load_failed)
        bridge.textReady.connect(self._on_text)
        bridge.finished.connect(self._on_finished)
        bridge.busyChanged.connect(self._update_buttons)
        self.replyFinished.connect(self.panel.finish)
        self._saver = QTimer(self)
        self._saver.setInterval(SAVE_INTERVAL_MS)
        self._saver.timeout.connect(self.session.tick)
        self._restore_layout()
        self.refresh_chats()
        if settings.last_chat_id:
            self.open_chat(settings.last_chat_id)
        self._update_buttons()
        QTimer.singleShot(0, self._start_sampler)
        settle_heap()  # a full collection of the start-up heap is a 20-40 ms GUI stall

    @property
    def conversation(self) -> Conversation:
        return self.session.conversation

    # -- errors ------------------------------------------------------------------------
    def report_error(self, error: Exception | str) -> None:
        """Put an error in front of the user (the status bar) and in the log."""
        message = str(error) or type(error).__name__
        log.error("shown to the user: %s", message)
        self.statusBar().showMessage(f"⚠ {message}", ERROR_SHOWN_MS)
        self.errorShown.emit(message)

    def open_log_folder(self) -> None:
        from core.log import log_dir

        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_dir())))

    # -- layout ------------------------------------------------------------------------
    def _first_size(self) -> None:
        """1280×800, or nine tenths of a smaller screen."""
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else None
        width, height = 1280, 800
        if area is not None and area.width() > 0:
            width = min(width, int(area.width() * 0.9))
            height = min(height, int(area.height() * 0.9))
        self.resize(max(width, 800), max(height, 560))

    def _restore_layout(self) -> None:
        """The window as the user left it; on first launch the panel takes about a third."""
        s = self.settings
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.window_geometry.encode()))
        if not (s.window_state and self.restoreState(QByteArray.fromBase64(
                s.window_state.encode()))):
            self.resizeDocks([self.panel], [dock_width(self.width())],
                             Qt.Orientation.Horizontal)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._focus_input)  # type at once: the first word is not lost

    def _focus_input(self) -> None:
        self.activateWindow()
        self.input.setFocus(Qt.FocusReason.OtherFocusReason)

    def _start_sampler(self) -> None:
        """Probe power sources off the GUI thread (NVML start-up can take a while); the
        panel is in place meanwhile and shows the readings once they come."""
        from core.telemetry import CostSettings, TelemetrySampler

        self.panel.prices = CostSettings(usd_per_kwh=self.settings.electricity_price_kwh)
        self.io.run(lambda: TelemetrySampler(hz=8).start(), self._attach_sampler)

    def _attach_sampler(self, sampler) -> None:
        self.panel.attach_sampler(sampler)
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
        self.session.model_name = loaded.model_name
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
        log.error("model did not load: %s", message)
        self.model_label.setText(self.loaded.model_name if self.loaded else "No model")
        self._update_buttons()
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not load the model", message,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("load-error")
        box.open()
        self.error_dialog = box
        self.errorShown.emit(message)

    def open_model_picker(self) -> None:
        from app.engines_dialog import load_remote
        from app.model_picker import ModelPicker

        picker = ModelPicker(self.settings, self)
        picker.draftChosen.connect(lambda draft: setattr(self.settings, "draft", draft))
        picker.modelChosen.connect(lambda path: self.load_model(Path(path)))
        picker.remoteChosen.connect(lambda ep, model: load_remote(self, ep, model))
        picker.open()

    def open_settings(self) -> None:
        from app.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            old = self.settings
            self.settings = dialog.result_settings()
            self.input.set_send_with(self.settings.send_with)
            self.io.run(lambda s=self.settings: save_settings(s))
            if self.loaded and self.loaded.source == "local" and (
                    replace(old, extra={}) != replace(self.settings, extra={})):
                engine_keys = ("n_ctx", "threads", "gpu_layers")
                if any(getattr(old, k) != getattr(self.settings, k) for k in engine_keys):
                    self.load_model(Path(self.loaded.path))

    # -- chats -------------------------------------------------------------------------
    def refresh_chats(self) -> None:
        self.session.list_chats(self.chat_list.search_text(), self._show_chats)

    def _show_chats(self, chats: list) -> None:
        self.chat_list.set_chats(chats)
        self.chat_list.select(self.conversation.chat_id)

    def new_chat(self) -> None:
        if self.bridge.busy:
            return
        self.session.new_chat()
        self.documents.set_chat(None)
        self.view.clear()
        self.system_prompt.clear()
        self.settings.last_chat_id = 0
        self.chat_list.select(None)
        self._focus_input()
        self._update_buttons()

    def open_chat(self, chat_id: int) -> None:
        if self.bridge.busy or chat_id == self.conversation.chat_id:
            return
        self.session.open(chat_id, self._show_chat)

    def _show_chat(self, conv: Conversation) -> None:
        self.view.clear()
        for turn in conv.turns:
            widget = self.view.add(turn.role, turn.content)
            widget.finish()
            widget.set_footer(footer_text(turn.metrics, turn.finish_reason))
        self.system_prompt.setText(conv.system_prompt)
        self.settings.last_chat_id = conv.chat_id or 0
        self.chat_list.select(conv.chat_id)
        self.documents.set_chat(conv.chat_id)
        self._update_buttons()
        self._focus_input()
        self.chatShown.emit(conv.chat_id or 0)

    def rename_chat(self, chat_id: int | None) -> None:
        from PySide6.QtWidgets import QInputDialog

        if chat_id is None:
            return
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:")
        if ok and title.strip():
            self.session.rename(chat_id, title.strip(), lambda _: self.refresh_chats())

    def delete_chat(self, chat_id: int | None) -> None:
        if chat_id is None or self.bridge.busy:
            return
        current = chat_id == self.conversation.chat_id
        self.session.delete_chat(chat_id, lambda _: self.refresh_chats())
        if current:
            self.new_chat()

    def _system_prompt_edited(self) -> None:
        self.session.set_system_prompt(self.system_prompt.text())

    # -- sending -----------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.bridge.busy:
            return
        if self.loaded is None:
            self.statusBar().showMessage("The model is still loading; your message is kept.",
                                         5000)
            return
        self.input.clear()
        if self.welcome is not None:
            self.welcome.dismiss()
            self.welcome = None
        sampling = chat_sampling(self.settings, self.session.chat_id)
        request = self.session.send(text, sampling, self.settings.max_tokens,
                                    self.system_prompt.text(), on_saved=self.refresh_chats)
        self.view.add("user", text)
        self._start_reply(request)

    def _start_reply(self, request) -> None:
        self.view.add("assistant", "")
        self._saver.start()
        self.documents.generate(request, self.bridge.generate)

    def _on_text(self, text: str) -> None:
        if not self.session.streaming or self.view.last is None:
            return
        self.session.on_text(text)
        self.view.last.append(text)

    def _on_finished(self, final: DoneEvent | ErrorEvent) -> None:
        self._saver.stop()
        reply = self.session.reply
        error_turn = self.session.finish(final)
        if reply is None:
            return
        last = self.view.last
        if last is not None:
            if last.raw != reply.content:  # the stream has usually shown it all
                last.set_text(reply.content)
            last.finish()
            if isinstance(final, DoneEvent):
                last.set_footer(footer_text(reply.metrics, final.finish_reason))
        if isinstance(final, DoneEvent):
            self.speed_label.setText(f"{final.metrics.decode_tok_s:.1f} tok/s")
        if error_turn is not None:
            self.view.add("error", error_turn.content)
            self.errorShown.emit(error_turn.content)
        self.settings.last_chat_id = self.conversation.chat_id or self.settings.last_chat_id
        self._update_buttons()
        self._focus_input()
        self.replyFinished.emit(final)

    def stop(self) -> None:
        if self.bridge.busy:
            self.bridge.cancel()

    def regenerate(self) -> None:
        if self.bridge.busy or self.loaded is None:
            return
        sampling = chat_sampling(self.settings, self.session.chat_id)
        result = self.session.regenerate(sampling, self.settings.max_tokens)
        if result is None:
            return
        request, removed = result
        self._forget(removed)
        self._start_reply(request)

    def edit_last(self) -> None:
        if self.bridge.busy:
            return
        text, removed = self.session.edit_last()
        if removed:
            self._forget(removed)
            self.input.setPlainText(text)
            self._focus_input()

    def _forget(self, removed: list[Turn]) -> None:
        for _ in removed:
            self.view.remove_last()
        self._update_buttons()

    def _update_buttons(self, *_: object) -> None:
        busy = self.bridge.busy
        ready = self.loaded is not None and not busy
        has_user = self.conversation.last_user_index() is not None
        self.send_button.setEnabled(ready)
        self.stop_button.setEnabled(busy and self.session.streaming)
        self.regen_button.setEnabled(ready and has_user)
        self.edit_button.setEnabled(not busy and has_user)

    # -- lifetime ----------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.streaming:  # keep what was said before the window goes
            self._saver.stop()
            self.bridge.cancel()
            self.session.close()
        self.panel.close_sampler()
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        settings = self.settings
        self.io.run(lambda: save_settings(settings))
        self.io.shutdown()
        self.documents.shutdown()
        super().closeEvent(event)

