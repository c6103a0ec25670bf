"""Server › Start local server: the OpenAI-compatible server over the app's own engine.

The window picks the port and an optional API key (required to accept other computers),
starts uvicorn on its own thread (never the GUI's), shows the URL with a copy button, the
requests in flight, and a live log of requests. Chats and API requests share the loaded
model through the engine's scheduler. Server threads report through queued signals only.

Signals: ``entryLogged(object, int)`` (internal: a finished request's log line or None,
and the requests in flight, from a server thread),
``started(str)`` / ``failed(str)`` (internal: the outcome of a start).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, Signal, Slot
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import HearthError
from server import DEFAULT_PORT, ServerConfig, create_server
from server.pool_router import router_for
from server.request_log import LogEntry
from server.run import ServerThread

LOG_LINES = 500


class ServerDialog(QDialog):
    entryLogged = Signal(object, int)
    started = Signal(str)
    failed = Signal(str)

    def __init__(self, backend: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Local server")
        self.resize(640, 460)
        self.backend = backend
        self.thread_: ServerThread | None = None
        self._listener: Callable[[LogEntry], None] = lambda _entry: None
        self._build()
        self.entryLogged.connect(self._on_entry, Qt.ConnectionType.QueuedConnection)
        self.started.connect(self._on_started)
        self.failed.connect(self._on_failed)
        self._update()

    def _build(self) -> None:
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.key = QLineEdit()
        self.key.setPlaceholderText("none (only this computer can connect)")
        new_key = QPushButton("New key")
        new_key.clicked.connect(lambda: self.key.setText(secrets.token_urlsafe(24)))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(new_key)
        self.public = QCheckBox("Accept other computers (needs a key)")
        self.url = QLineEdit()
        self.url.setReadOnly(True)
        self.copy = QPushButton("Copy URL")
        self.copy.clicked.connect(self.copy_url)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.copy)
        self.status = QLabel("Stopped")
        self.in_flight = QLabel("0")
        form = QFormLayout()
        form.addRow("Port", self.port)
        form.addRow("API key", key_row)
        form.addRow("", self.public)
        form.addRow("URL", url_row)
        form.addRow("Status", self.status)
        form.addRow("Requests in flight", self.in_flight)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.toggle = QPushButton("Start")
        self.toggle.clicked.connect(self.toggle_server)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Requests"))
        layout.addWidget(self.log_view, 1)
        layout.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignRight)

    # -- intent ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.thread_ is not None

    def toggle_server(self) -> None:
        if self.running:
            self.stop_server()
        else:
            self.start_server()

    def start_server(self) -> None:
        key = self.key.text().strip() or None
        config = ServerConfig(host="0.0.0.0" if self.public.isChecked() else "127.0.0.1",
                              port=self.port.value(), api_key=key)
        try:
            srv = create_server(router_for(self.backend), config)  # the pool's models
        except HearthError as err:
            self._on_failed(str(err))
            return
        thread = ServerThread(srv)
        self._listener = lambda entry: self.entryLogged.emit(  # a snapshot, taken now
            None if entry.in_flight else entry.line(), srv.log.in_flight)
        srv.log.subscribe(self._listener)  # called on server threads: queued to the GUI
        self.thread_ = thread
        self.status.setText("Starting…")
        self._update()

        def start() -> None:
            try:
                self.started.emit(thread.start())
            except HearthError as err:
                self.failed.emit(str(err))

        threading.Thread(target=start, name="server-start", daemon=True).start()

    def stop_server(self) -> None:
        thread, self.thread_ = self.thread_, None
        if thread is not None:
            thread.srv.log.unsubscribe(self._listener)
            threading.Thread(target=thread.stop, name="server-stop", daemon=True).start()
        self.status.setText("Stopped")
        self.url.clear()
        self.in_flight.setText("0")
        self._update()

    def copy_url(self) -> None:
        QGuiApplication.clipboard().setText(self.url.text())

    # -- reports (GUI thread) ----------------------------------------------------------
    @Slot(str)
    def _on_started(self, url: str) -> None:
        if self.thread_ is None:
            return
        self.url.setText(url)
        self.status.setText("Running" + (" (API key required)" if self.key.text() else ""))
        self._update()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.thread_ = None
        self.status.setText(f"Not running: {message}")
        self._update()

    @Slot(object, int)
    def _on_entry(self, line: str | None, in_flight: int) -> None:
        if line is not None:
            self.log_view.appendPlainText(line)
        self.in_flight.setText(str(in_flight if self.thread_ is not None else 0))

    def _update(self) -> None:
        running = self.running
        self.toggle.setText("Stop" if running else "Start")
        for widget in (self.port, self.key, self.public):
            widget.setEnabled(not running)
        self.copy.setEnabled(bool(self.url.text()))

    def closeEvent(self, event: Any) -> None:  # the server keeps running while hidden
        self.hide()
        event.ignore()

    def shutdown(self) -> None:
        self.stop_server()


def install_server_menu(window: Any) -> None:
    """Add Server › Start local server… to the main window (its engine serves the API)."""
    menu = window.menuBar().addMenu("Se&rver")
    state: dict[str, ServerDialog] = {}

    def open_dialog() -> None:
        if "dialog" not in state:
            state["dialog"] = ServerDialog(window.bridge.client, window)
            app = QCoreApplication.instance()
            if app is not None:
                app.aboutToQuit.connect(state["dialog"].shutdown)
        state["dialog"].show()

    action = QAction("Start &local server…", window)
    action.triggered.connect(open_dialog)
    menu.addAction(action)
    window.server_action = action
    window.server_dialog = lambda: state.get("dialog")
