"""The model picker: models on this computer, and Hugging Face search with fit labels.

Every scan, search, header read and download runs through :class:`Background`; download
progress arrives as queued signals. Choosing a model emits ``modelChosen(path)``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.bridge import Background
from app.engines_dialog import RemoteModelsTab
from app.tables import make_table, set_row
from app.wording import plural
from core.models.hub.download import Downloader
from core.models.hub.events import DownloadControl, DownloadEvent
from core.planning.fit import FitResult, fit_hub_models, fit_local, label
from core.planning.planner import PlanSettings
from core.settings import Settings


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


class _Progress(QObject):
    """Carries download events from the download thread to the GUI (queued)."""

    event = Signal(object)


class ModelPicker(QDialog):
    """Signals: ``modelChosen(str)`` with the GGUF path to load (plus ``draftChosen(str)``:
    "" none, "twin", "lookup" or a draft GGUF path), or ``remoteChosen(Endpoint, str)``."""

    modelChosen = Signal(str)
    draftChosen = Signal(str)
    remoteChosen = Signal(object, str)  # (Endpoint, model id) from the Remote tab
    libraryLoaded = Signal()
    filesListed = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None,
                 hardware: object | None = None, downloader: Downloader | None = None,
                 library: object | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(980, 620)
        self.settings = settings
        self.jobs = Background("picker", self, report=self._show_error)
        self.downloads = Background("download", self, report=self._show_error)
        self.downloader = downloader or Downloader()
        self._hardware = hardware
        self._library = library
        self._entries: dict[str, object] = {}
        self._fit: FitResult | None = None
        self._repo = ""
        self._control: DownloadControl | None = None
        self._progress = _Progress(self)
        self._progress.event.connect(self._on_download_event)
        self.last_event: DownloadEvent | None = None
        self.downloaded: Path | None = None
        self.resumed_from = 0  # bytes the last download found on disk from an earlier try
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._local_tab(), "On this computer")
        self.tabs.addTab(self._hub_tab(), "Hugging Face")
        self.remote_tab = RemoteModelsTab(parent=self)
        self.tabs.addTab(self.remote_tab, "Remote")
        layout.addWidget(self.tabs, 1)
        layout.addLayout(self._footer())
        self.refresh_library()

    # -- tabs --------------------------------------------------------------------------
    def _local_tab(self) -> QWidget:
        tab = QWidget()
        col = QVBoxLayout(tab)
        self.local_table = make_table(["Model", "Quant", "Size", "Architecture", "Source", "Fit",
                                   "Measured here"])
        self.local_table.itemSelectionChanged.connect(self._local_selected)
        col.addWidget(self.local_table, 1)
        row = QHBoxLayout()
        imp = QPushButton("Import .gguf…")
        imp.clicked.connect(self._import)
        row.addWidget(imp)
        row.addStretch(1)
        col.addLayout(row)
        return tab

    def _hub_tab(self) -> QWidget:
        tab = QWidget()
        col = QVBoxLayout(tab)
        search_row = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search GGUF models on Hugging Face")
        self.query.returnPressed.connect(self.search)
        go = QPushButton("Search")
        go.clicked.connect(self.search)
        search_row.addWidget(self.query, 1)
        search_row.addWidget(go)
        col.addLayout(search_row)
        body = QHBoxLayout()
        self.repos = QListWidget()
        self.repos.itemClicked.connect(lambda item: self.list_files(item.data(
            Qt.ItemDataRole.UserRole)))
        body.addWidget(self.repos, 1)
        self.files = make_table(["File", "Size", "Quant", "Fit on this computer"])
        body.addWidget(self.files, 2)
        col.addLayout(body, 1)
        dl_row = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self.download)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self._pause_resume)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_download)
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        for w in (self.download_button, self.pause_button, self.cancel_button):
            dl_row.addWidget(w)
        dl_row.addWidget(self.progress, 1)
        col.addLayout(dl_row)
        self._set_downloading(False)
        return tab

    def _footer(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Context"))
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(256, 1 << 20)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setValue(self.settings.n_ctx)
        self.n_ctx.valueChanged.connect(self._local_selected)
        row.addWidget(self.n_ctx)
        row.addWidget(QLabel("Speed-up"))
        self.draft = QComboBox()
        self.draft.addItem("None", "")
        self.draft.addItem("Quantized twin (lossless)", "twin")
        self.draft.addItem("Prompt lookup", "lookup")
        row.addWidget(self.draft)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        self.load_button = QPushButton("Load")
        self.load_button.setDefault(True)
        self.load_button.clicked.connect(self._load)
        row.addWidget(self.load_button)
        return row

    # -- hardware and plans --------------------------------------------------------------
    def _plan_settings(self) -> PlanSettings:
        headroom = 1 - self.settings.memory_headroom_pct / 100
        return PlanSettings(n_ctx=self.n_ctx.value(), max_vram_utilisation=headroom)

    def hardware(self):
        if self._hardware is None:
            from core.planning.hardware import probe

            self._hardware = probe()
        return self._hardware

    # -- local -------------------------------------------------------------------------
    def library(self):
        if self._library is None:
            from core.models.library import Library

            self._library = Library()
        return self._library

    def refresh_library(self) -> None:
        from core.planning.measured import MeasurementStore

        def scan() -> list[tuple[object, str, str]]:
            out = []
            measured = MeasurementStore().by_path()  # the benchmark's figures, per file
            for entry in self.library().models():
                verdict = ""
                if entry.usable:
                    try:
                        verdict = label(fit_local(entry.path, self.hardware(),
                                                  self._plan_settings()))
                    except Exception as err:  # a file the planner cannot read: say so
                        verdict = f"unknown ({err})"
                row = measured.get(str(Path(entry.path).resolve()))
                out.append((entry, verdict or (entry.problem or ""),
                            row.summary().removeprefix("measured here: ") if row else ""))
            return out

        self.status.setText("Scanning models on this computer…")
        self.jobs.run(scan, self._show_library, self._show_error)

    def _show_library(self, rows: list[tuple[object, str, str]]) -> None:
        self.local_table.setRowCount(len(rows))
        self._entries = {}
        for i, (entry, verdict, measured) in enumerate(rows):
            self._entries[entry.id] = entry
            set_row(self.local_table, i, [entry.name, entry.quant or "?", _size(entry.size),
                                           entry.architecture or "?", entry.source, verdict,
                                           measured], entry.id)
        self.status.setText(f"{plural(len(rows), 'model')} on this computer")
        self.libraryLoaded.emit()

    def _selected_entry(self):
        items = self.local_table.selectedItems()
        return self._entries.get(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def _local_selected(self, *_: object) -> None:
        entry = self._selected_entry()
        if entry is None or not entry.usable:
            return
        settings = self._plan_settings()
        self.jobs.run(lambda: label(fit_local(entry.path, self.hardware(), settings)),
                      lambda text: self.status.setText(f"{entry.name}: {text}"),
                      self._show_error)

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.jobs.run(lambda: self.library().import_file(Path(path)),
                          lambda _entry: self.refresh_library(), self._show_error)

    # -- hub ---------------------------------------------------------------------------
    def search(self) -> None:
        from core.models.hub.search import search_models

        text = self.query.text().strip()
        self.status.setText(f"Searching for “{text}”…")
        self.jobs.run(lambda: search_models(text), self._show_repos, self._show_error)

    def _show_repos(self, repos: list) -> None:
        self.repos.clear()
        for repo in repos:
            item = QListWidgetItem(f"{repo.repo_id}  ·  {repo.downloads:,} downloads")
            item.setData(Qt.ItemDataRole.UserRole, repo.repo_id)
            self.repos.addItem(item)
        self.status.setText(f"{len(repos)} repos")

    def list_files(self, repo_id: str) -> None:
        from core.models.hub.files import list_models

        self._repo = repo_id
        settings = self._plan_settings()

        def work() -> tuple[list, FitResult]:
            models = list_models(repo_id)
            return models, fit_hub_models(models, self.hardware(), settings)

        self.status.setText(f"Reading {repo_id}…")
        self.jobs.run(work, self._show_files, self._show_error)

    def _show_files(self, result: tuple[list, FitResult]) -> None:
        models, fit = result
        self._fit = fit
        shown = [m for m in models if not m.projector]
        self.files.setRowCount(len(shown))
        for i, m in enumerate(shown):
            plan = fit.plans.get(m.name)
            verdict = label(plan) if plan else ("incomplete split" if not m.complete else "")
            if m.name == fit.recommended:
                verdict = "★ recommended · " + verdict
            set_row(self.files, i, [m.name, _size(m.size), m.quant or "?", verdict], m.name)
            if m.name == fit.recommended:
                self.files.selectRow(i)
        self.status.setText(" ".join(fit.notes[-1:]) or f"{len(shown)} files")
        self.filesListed.emit()

    def selected_file(self) -> str | None:
        items = self.files.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def download(self) -> None:
        filename = self.selected_file()
        if not filename or not self._repo:
            return
        control = self._control = DownloadControl()
        self.resumed_from = 0
        repo, emit = self._repo, self._progress.event.emit

        def run() -> Path | None:
            path = None
            for event in self.downloader.iter_download(repo, filename, control=control):
                emit(event)
                path = event.path or path
            return path

        self._set_downloading(True)
        self.downloads.run(run, self._download_done, self._download_failed)

    def _on_download_event(self, event: DownloadEvent) -> None:
        self.last_event = event
        self.resumed_from = max(self.resumed_from, event.resumed_from)
        if event.total:
            self.progress.setMaximum(1000)
            self.progress.setValue(int(1000 * event.done / event.total))
        eta = f", {event.eta:.0f} s left" if event.eta is not None else ""
        self.progress.setFormat(f"{_size(event.done)} of {_size(event.total)} "
                                f"({event.rate / 2**20:.1f} MiB/s{eta})")

    def _download_done(self, path: Path | None) -> None:
        self._set_downloading(False)
        self.status.setText(f"Downloaded and verified: {path.name if path else ''}")
        self.refresh_library()
        self.downloaded = path

    def _download_failed(self, err: Exception) -> None:
        self._set_downloading(False)
        self._show_error(err)

    def _pause_resume(self) -> None:
        if self._control is None:
            return
        if self._control.paused:
            self._control.resume()
            self.pause_button.setText("Pause")
        else:
            self._control.pause()
            self.pause_button.setText("Resume")

    def cancel_download(self) -> None:
        if self._control is not None:
            self._control.cancel()

    def _set_downloading(self, on: bool) -> None:
        self.download_button.setEnabled(not on)
        self.pause_button.setEnabled(on)
        self.cancel_button.setEnabled(on)
        self.pause_button.setText("Pause")

    # -- outcome -----------------------------------------------------------------------
    def _load(self) -> None:
        if self.tabs.currentWidget() is self.remote_tab:
            choice = self.remote_tab.selected()
            if choice is None:
                self.status.setText("Choose a remote model first.")
                return
            self.remoteChosen.emit(*choice)
            self.accept()
            return
        entry = self._selected_entry() if self.tabs.currentIndex() == 0 else None
        path = getattr(self, "downloaded", None) if entry is None else entry.path
        if path is None:
            self.status.setText("Choose a model on this computer (or download one) first.")
            return
        self.draftChosen.emit(self.draft.currentData())
        self.modelChosen.emit(str(path))
        self.accept()

    def _show_error(self, err: Exception) -> None:
        self.status.setText(str(err))

    def done(self, result: int) -> None:
        if self._control is not None:
            self._control.cancel()
        super().done(result)
