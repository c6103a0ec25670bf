"""Settings › Engines: remote OpenAI-compatible engines, and their models in the picker.

:class:`EnginesDialog` adds an endpoint (address, key), tests it, removes it; the key goes
to the OS keyring (or an owner-only file where there is none) and is never shown again,
logged or kept in the history. :class:`RemoteModelsTab` is the model picker's "Remote" tab:
every saved engine's models with their source; :func:`load_remote` switches a window's
chat to one. Every network and disk call runs through :class:`Background`.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge import Background
from app.tables import make_table, set_row
from core.engine.remote import RemoteBackend, RemoteModel, RetryPolicy, Timeouts
from core.errors import HearthError
from core.models.engines import Endpoint, EndpointStore

# Listing models for the picker: an engine that is down must not hold the tab for long.
LIST_TIMEOUTS = Timeouts(connect_s=3.0, read_s=10.0)
LIST_RETRY = RetryPolicy(retries=1, max_wait_s=5.0)


def _message(err: Exception) -> str:
    return str(err) if isinstance(err, HearthError) else f"Unexpected error: {err}"


def backend_for(store: EndpointStore, endpoint: Endpoint, model: str | None = None,
                **kwargs: Any) -> RemoteBackend:
    """A backend for a saved endpoint; its key is read from the store when first needed
    (on the engine's thread)."""
    return RemoteBackend(endpoint.base_url, model, lambda: store.key(endpoint), **kwargs)


def load_remote(window: Any, endpoint: Endpoint, model: str,
                store: EndpointStore | None = None) -> None:
    """Switch ``window``'s chats to ``model`` on ``endpoint`` (the status bar follows, and a
    failure is the usual load-error dialog)."""
    backend = backend_for(store or EndpointStore(), endpoint, model)
    window.model_label.setText(f"Connecting to {endpoint.name}…")
    window.place_label.setText("")
    window.bridge.load(window.engine_config(None), backend)


def open_engines(window: Any) -> EnginesDialog:
    dialog = EnginesDialog(parent=window)
    dialog.open()
    return dialog


class EnginesDialog(QDialog):
    """Signals: ``tested(object)`` after Test (a list of RemoteModel, or the error text);
    ``changed()`` after an endpoint was saved or removed."""

    tested = Signal(object)
    changed = Signal()

    def __init__(self, store: EndpointStore | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Engines")
        self.resize(760, 420)
        self.store = store or EndpointStore()
        self.jobs = Background("engines", self, report=lambda err: self.status.setText(str(err)))
        self._endpoints: list[Endpoint] = []
        col = QVBoxLayout(self)
        intro = QLabel("Remote engines speak the OpenAI API: vLLM, llama-server, Ollama, "
                       "another Hearth. Their models appear in File › Models… › Remote.")
        intro.setWordWrap(True)
        col.addWidget(intro)
        self.table = make_table(["Name", "Address", "Key"])
        self.table.itemSelectionChanged.connect(self._selected)
        col.addWidget(self.table, 1)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setPlaceholderText("gpu-box (optional)")
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://192.168.1.20:8000/v1")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("API key, if the engine needs one")
        form.addRow("Name", self.name)
        form.addRow("Address", self.url)
        form.addRow("Key", self.key)
        col.addLayout(form)
        buttons = QHBoxLayout()
        self.test_button = QPushButton("Test")
        self.test_button.clicked.connect(self.test)
        self.add_button = QPushButton("Save")
        self.add_button.clicked.connect(self.save)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        for b in (self.test_button, self.add_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        col.addLayout(buttons)
        self.status = QLabel("")
        self.status.setObjectName("engines-status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.status)
        self.refresh()

    # -- list ----------------------------------------------------------------------------
    def refresh(self) -> None:
        self.jobs.run(self.store.endpoints, self._show, self._failed)

    def _show(self, endpoints: list[Endpoint]) -> None:
        self._endpoints = endpoints
        self.table.setRowCount(len(endpoints))
        for i, ep in enumerate(endpoints):
            set_row(self.table, i, [ep.name, ep.base_url, "saved" if ep.has_key else "none"],
                 ep.id)
        if not endpoints and not self.status.text():
            self.status.setText("No engines yet: enter an address, Test, then Save.")

    def _selected(self) -> None:
        ep = self.selected()
        if ep is not None:
            self.name.setText(ep.name)
            self.url.setText(ep.base_url)
            self.key.clear()
            self.key.setPlaceholderText("(saved; type a new key to replace it)" if ep.has_key
                                        else "API key, if the engine needs one")

    def selected(self) -> Endpoint | None:
        items = self.table.selectedItems()
        if not items:
            return None
        wanted = items[0].data(Qt.ItemDataRole.UserRole)
        return next((e for e in self._endpoints if e.id == wanted), None)

    # -- actions -------------------------------------------------------------------------
    def test(self) -> None:
        """List the engine's models with what is typed (or the saved key, when the key
        field is left empty for a saved address)."""
        url, typed = self.url.text(), self.key.text()
        store = self.store

        def probe() -> tuple[list[RemoteModel], float]:
            key = typed or None
            if key is None:
                saved = store.find(url)
                key = store.key(saved) if saved is not None else None
            t0 = time.perf_counter()
            with RemoteBackend(url, api_key=key, timeouts=LIST_TIMEOUTS,
                               retry=LIST_RETRY) as engine:
                return engine.models(), (time.perf_counter() - t0) * 1000

        self.status.setText("Testing…")
        self.jobs.run(probe, self._tested, self._test_failed)

    def _tested(self, result: tuple[list[RemoteModel], float]) -> None:
        models, ms = result
        names = ", ".join(m.id for m in models[:4]) + ("…" if len(models) > 4 else "")
        server = models[0].server if models else "the engine"
        self.status.setText(f"Connected to {server} in {ms:.0f} ms: {len(models)} "
                            f"model{'s' if len(models) != 1 else ''} ({names or 'none'}).")
        self.tested.emit(models)

    def _test_failed(self, err: Exception) -> None:
        self._failed(err)
        self.tested.emit(_message(err))

    def save(self) -> None:
        url, key, name = self.url.text(), self.key.text(), self.name.text()
        saved = self.selected()
        keep_key = not key and saved is not None and saved.has_key
        store = self.store

        def add() -> Endpoint:
            if keep_key and saved is not None:  # an empty field keeps the saved key
                return store.add(url, store.key(saved) or "", name)
            return store.add(url, key, name)

        self.key.clear()
        self.jobs.run(add, self._saved, self._failed)

    def _saved(self, endpoint: Endpoint) -> None:
        where = f"; key in {self.store.keys.where}" if endpoint.has_key else ""
        self.status.setText(f"Saved {endpoint.label}{where}.")
        self.refresh()
        self.changed.emit()

    def remove(self) -> None:
        ep = self.selected()
        if ep is None:
            self.status.setText("Choose an engine in the list first.")
            return
        self.jobs.run(lambda: self.store.remove(ep.id), lambda _: self._removed(ep),
                      self._failed)

    def _removed(self, ep: Endpoint) -> None:
        self.status.setText(f"Removed {ep.label} and its key.")
        self.refresh()
        self.changed.emit()

    def _failed(self, err: Exception) -> None:
        self.status.setText(_message(err))


class RemoteModelsTab(QWidget):
    """The model picker's Remote tab. Signals: ``listed()`` after each refresh."""

    listed = Signal()

    def __init__(self, store: EndpointStore | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store or EndpointStore()
        self.jobs = Background("remote-models", self,
                               report=lambda err: self.status.setText(str(err)))
        self._rows: list[tuple[Endpoint, RemoteModel]] = []
        col = QVBoxLayout(self)
        self.table = make_table(["Model", "Engine", "Source", "Context", "Address"])
        col.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.status = QLabel("")
        self.status.setObjectName("remote-status")
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        engines = QPushButton("Engines…")
        engines.clicked.connect(self._engines)
        row.addWidget(refresh)
        row.addWidget(engines)
        col.addLayout(row)
        self.refresh()

    def refresh(self) -> None:
        store = self.store

        def scan() -> tuple[list[tuple[Endpoint, RemoteModel]], list[str]]:
            rows, problems = [], []
            for ep in store.endpoints():
                try:
                    with backend_for(store, ep, timeouts=LIST_TIMEOUTS,
                                     retry=LIST_RETRY) as engine:
                        rows += [(ep, m) for m in engine.models()]
                except HearthError as err:
                    problems.append(f"{ep.name}: {err}")
            return rows, problems

        self.status.setText("Asking the remote engines for their models…")
        self.jobs.run(scan, self._show, lambda err: self.status.setText(_message(err)))

    def _show(self, result: tuple[list[tuple[Endpoint, RemoteModel]], list[str]]) -> None:
        rows, problems = result
        self._rows = rows
        self.table.setRowCount(len(rows))
        for i, (ep, m) in enumerate(rows):
            set_row(self.table, i, [m.id, ep.name, m.source, f"{m.n_ctx:,}" if m.n_ctx else "?",
                                 ep.base_url], i)
        summary = (f"{len(rows)} remote models" if rows or problems
                   else "No remote engines yet: Engines… adds one.")
        self.status.setText(" · ".join([summary, *problems]))
        self.listed.emit()

    def selected(self) -> tuple[Endpoint, str] | None:
        items = self.table.selectedItems()
        if not items:
            return None
        ep, model = self._rows[items[0].data(Qt.ItemDataRole.UserRole)]
        return ep, model.id

    def _engines(self) -> None:
        dialog = EnginesDialog(self.store, self)
        dialog.changed.connect(self.refresh)
        dialog.open()
