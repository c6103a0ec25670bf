"""The engine pool in the window: a "Loaded models" view, a status-bar line, and each chat
remembering its model.

* **View › Loaded models…** (Ctrl+Shift+M) lists the models with a worker now: state, the
  worker's memory (measured RSS, and what the budget counts), its CPU and energy (the
  telemetry sampler watches every worker; energy is the machine's power shared out by each
  worker's CPU over the sampler's history), requests in flight and waiting, when keep-alive
  unloads it, and an Unload button.
* The status bar says what is loaded ("Loaded: a (1 running) · b"), and when a request
  waits for its model, its place and what it waits for.
* A chat's row in the history keeps the path of the model that last answered in it; opening
  the chat brings that model back (at once when it is still resident). A chat saved by an
  older Hearth holds a model *name*, looked up in the catalog; one whose model is gone says
  so in the status bar and carries on with the loaded one.

What can block (a catalog scan for an old chat's model name) runs on the window's
:class:`~app.bridge.Background`; an unload only marks the model (its worker closes on the
pool's own thread), so nothing here waits on the engine. The status line's reading of the
pool (its lock, each worker's memory) is taken once a second on a thread of its own and
shown when it comes: a load or a busy pool holding that lock never stalls the window.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.bridge import Background
from core.engine.pool import EnginePool, ModelStatus, Waiting
from core.errors import HearthError
from core.planning.hardware import format_size

log = logging.getLogger("hearth.app")
REFRESH_MS = 1000
COLUMNS = ("Model", "State", "Memory (RSS)", "Budgeted", "CPU", "Energy (10 min)",
           "In flight", "Waiting", "Unloads in", "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def status_line(rows: list[ModelStatus], waiting: int) -> str:
    """The status bar's words for what is loaded."""
    if not rows:
        return "No model loaded"
    parts = []
    for row in rows:
        name = Path(row.name).stem
        extra = [f"{row.in_flight} running"] if row.in_flight else []
        if row.state != "loaded":
            extra.insert(0, row.state)
        parts.append(f"{name} ({', '.join(extra)})" if extra else name)
    line = "Loaded: " + " · ".join(parts)
    return line + (f" · {waiting} waiting" if waiting else "")


class LoadedModelsView(QDialog):
    """The models with a worker now, refreshed every second while shown."""

    def __init__(self, pool: EnginePool, sampler: Any = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loaded-models")
        self.setWindowTitle("Loaded models")
        self.resize(900, 260)
        self.pool = pool
        self.sampler = sampler  # a callable returning the TelemetrySampler (or None)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        self.rows: list[ModelStatus] = []
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    def showEvent(self, event: Any) -> None:
        self.refresh()
        self.timer.start()
        super().showEvent(event)

    def hideEvent(self, event: Any) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def _telemetry(self, pid: int | None) -> tuple[str, str]:
        sampler = self.sampler() if callable(self.sampler) else None
        if sampler is None or not pid:
            return "—", "—"
        sampler.set_pids(self.pool.worker_pids())  # (also kept so by the status line)
        latest = sampler.latest()
        cpu = next((p.cpu_percent for p in (latest.procs if latest else ()) if p.pid == pid),
                   None)
        joules = sampler.process_energy_j(pid)
        return (f"{cpu:.0f} %" if cpu is not None else "—",
                f"{joules:.1f} J" if joules is not None else "—")

    def refresh(self) -> None:
        self.rows = self.pool.resident()
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            cpu, energy = self._telemetry(row.worker_pid)
            budgeted = format_size(row.host_bytes) + (
                f" + {format_size(row.vram_bytes)} VRAM" if row.vram_bytes else "")
            cells = (Path(row.name).stem, f"{row.state}, {row.placement}".strip(", "),
                     format_size(row.rss_bytes) if row.rss_bytes else "—", budgeted, cpu,
                     energy, str(row.in_flight), str(row.waiting),
                     _duration(row.expires_in_s))
            for col, text in enumerate(cells):
                self.table.setItem(i, col, QTableWidgetItem(text))
            button = QPushButton("Unload")
            button.setObjectName(f"unload-{i}")
            button.setEnabled(row.state == "loaded")
            button.setToolTip("Unload now (a model still answering goes when it is done)")
            button.clicked.connect(lambda _=False, path=row.path: self.unload(path))
            self.table.setCellWidget(i, len(COLUMNS) - 1, button)
        waiting = self.pool.waiting()
        self.note.setText("\n".join(f"Waiting #{w.position}: a request for {w.model} "
                                    f"({w.reason})" for w in waiting))

    def unload(self, path: str) -> None:
        """Unload now, or when its requests end (the pool's thread closes the worker)."""
        try:
            self.pool.unload(Path(path), wait=False)
        except HearthError as err:
            self.note.setText(f"Could not unload {Path(path).name}: {err}")
            return
        self.refresh()


class PoolControls:
    """Wires the pool into a main window: menu action, status-bar line, chat models."""

    def __init__(self, window: Any, pool: EnginePool) -> None:
        self.window, self.pool = window, pool
        self.view: LoadedModelsView | None = None
        self.label = QLabel("No model loaded")
        self.label.setObjectName("loaded-models-status")
        window.statusBar().addPermanentWidget(self.label)
        menu = getattr(window, "view_menu", None) or window.menuBar().addMenu("&View")
        self.action = QAction("Loaded &models…", window)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+M"))
        self.action.triggered.connect(self.show_view)
        menu.addAction(self.action)
        self._reader = Background("pool-status", window, report=self._read_failed)
        self._reading = False
        self.timer = QTimer(window)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._refresh_soon)
        self.timer.start()
        window.replyFinished.connect(self._remember_model)
        window.chat_list.chatSelected.connect(self._chat_selected)

    def show_view(self) -> LoadedModelsView:
        if self.view is None:
            window = self.window  # the panel (and its sampler) docks after start-up
            self.view = LoadedModelsView(
                self.pool, lambda: getattr(getattr(window, "panel", None), "sampler", None),
                window)
        self.view.show()
        self.view.activateWindow()
        return self.view

    def _read(self) -> tuple[list[ModelStatus], list[Waiting], dict[int, str]]:
        return self.pool.resident(), self.pool.waiting(), self.pool.worker_pids()

    def _refresh_soon(self) -> None:
        """The timer's tick: read the pool off the GUI thread (one reading at a time)."""
        if self._reading or not self.window.isVisible():
            return
        self._reading = True
        self._reader.run(self._read, self._show, self._read_failed)

    def _read_failed(self, err: Exception) -> None:
        self._reading = False
        log.warning("could not read the engine pool's status: %s", err)

    def refresh_status(self) -> None:
        """The status-bar line, read now (the timer reads it in the background)."""
        self._show(self._read())

    def _show(self, reading: tuple[list[ModelStatus], list[Waiting], dict[int, str]]) -> None:
        """Show a reading; and the telemetry sampler watches every worker (the power
        estimate counts them all, the view shares energy out by their CPU)."""
        self._reading = False
        rows, waiting, pids = reading
        sampler = getattr(getattr(self.window, "panel", None), "sampler", None)
        if sampler is not None:
            sampler.set_pids(pids)
        self.label.setText(status_line(rows, len(waiting)))
        if waiting:
            first = waiting[0]
            self.label.setToolTip(f"Next: a request for {first.model} ({first.reason})")
        else:
            self.label.setToolTip("")

    # -- each chat remembers its model -------------------------------------------------
    def _remember_model(self, _final: object) -> None:
        loaded, conv, history = self.window.loaded, self.window.conversation, self.window.history
        if loaded is None:
            return
        path = loaded.path

        def save() -> None:
            if conv.chat_id is not None:  # created earlier on the same (ordered) thread
                history.update_chat(conv.chat_id, model=path)

        self.window.io.run(save)

    def _chat_selected(self, chat_id: int) -> None:
        history, catalog = self.window.history, self.pool.catalog

        def find() -> tuple[str, Path | None]:
            chat = history.get_chat(chat_id)
            if chat is None or not chat.model:
                return "", None
            if Path(chat.model).is_file():
                return chat.model, Path(chat.model)
            try:
                return chat.model, catalog.resolve(chat.model)
            except HearthError:
                return chat.model, None

        self.window.io.run(find, lambda found: self._switch(*found))

    def _switch(self, model: str, path: Path | None) -> None:
        window = self.window
        if not model or window.bridge.busy:
            return
        if path is None:
            window.statusBar().showMessage(f"This chat used {model}, which is no longer on "
                                           "this computer; the loaded model answers.", 10000)
            return
        current = window.loaded.path if window.loaded is not None else None
        if current is None or Path(current).resolve() != path.resolve():
            window.load_model(path)
