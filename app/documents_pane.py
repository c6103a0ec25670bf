"""The Documents pane: collections, indexing progress, which collections a chat uses, the
budget and template, the token breakdown of what is sent, and the sources of the reply (in
the pane, and as links under the reply itself: :class:`SourcesStrip`).

A dock beside the chat (View › Documents, Ctrl+D). Everything that touches the disk or the
tokenizer runs on the pane's own :class:`Background` worker (one at a time: indexing, the
folder rescans and prompt building never race); results come back as queued calls on the
GUI thread. Watched folders are rescanned by polling every ``WATCH_MS`` (see
``core.chat.documents.watch``).

Signals: ``progressed(object)`` (an IndexProgress, from the worker), ``indexed(object)``
(an IndexReport), ``promptReady(object)`` (the DocumentPrompt just sent).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCursor, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.bridge import Background
from core.chat.documents import (
    DEFAULT_BUDGET,
    DocumentPrompt,
    DocumentStore,
    Indexer,
    IndexProgress,
    IndexReport,
    build_document_prompt,
)
from core.chat.documents.sources import Source
from core.chat.documents.template import SEED_TEMPLATE, check_template
from core.chat.documents.tokens import ModelTokenizer
from core.chat.documents.watch import FolderWatcher
from core.engine import DoneEvent, ErrorEvent, GenerationRequest
from core.errors import HearthError

log = logging.getLogger("hearth.app")
WATCH_MS = 30_000


class TemplateDialog(QDialog):
    """Edit the documents template; Reset puts the seed's back."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Documents template")
        self.editor = QPlainTextEdit(text)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.Reset)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Reset).clicked.connect(
            lambda: self.editor.setPlainText(SEED_TEMPLATE))
        col = QVBoxLayout(self)
        col.addWidget(QLabel("{relevant_documents} and {user_query} are filled in."))
        col.addWidget(self.editor)
        col.addWidget(self.error)
        col.addWidget(buttons)
        self.resize(520, 360)

    def _accept(self) -> None:
        try:
            check_template(self.editor.toPlainText())
        except HearthError as err:
            self.error.setText(str(err))
            return
        self.accept()


class SourcesStrip(QLabel):
    """The sources under a reply: ``[n] file, page`` links (cited ones first, in bold) that
    open the file; hovering one shows the exact passage the model was given."""

    def __init__(self, sources: list[Source], cited: set[int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sources")
        self.sources = {str(s.n): s for s in sources}
        links = []
        for s in sorted(sources, key=lambda s: (s.n not in cited, s.n)):
            text = html.escape(f"[{s.n}] {s.label()}")
            link = f'<a href="{s.n}">{text}</a>'
            links.append(f"<b>{link}</b>" if s.n in cited else link)
        self.setText("Sources: " + " · ".join(links))
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.linkActivated.connect(self.open)
        self.linkHovered.connect(self._preview)

    def open(self, n: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.sources[n].path))

    def _preview(self, n: str) -> None:
        source = self.sources.get(n)
        QToolTip.showText(QCursor.pos(), source.text[:1200] if source else "", self)


class DocumentsPane(QDockWidget):
    """See the module docstring. ``window`` is the MainWindow (its conversation, loaded
    model, input box and ``replyFinished`` signal)."""

    progressed = Signal(object)
    indexed = Signal(object)
    promptReady = Signal(object)

    def __init__(self, window: Any, store: DocumentStore | None = None) -> None:
        super().__init__("Documents", window)
        self.setObjectName("documents-pane")
        self.window_ = window
        self.worker = Background("documents", self, report=self._failed)
        self.store = store or DocumentStore()
        self.indexer = Indexer(self.store, progress=self.progressed.emit)
        self.watcher = FolderWatcher(self.indexer, self.names, on_report=self.indexed.emit)
        self._tokenizers: dict[str, ModelTokenizer] = {}
        self._chat_id: int | None = None
        self.last_prompt: DocumentPrompt | None = None
        self._check_next: str | None = None
        self._build()
        self.progressed.connect(self._on_progress)
        self.indexed.connect(self._on_indexed)
        window.replyFinished.connect(self._on_reply)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self)
        toggle = self.toggleViewAction()
        toggle.setShortcut(QKeySequence("Ctrl+D"))
        window.view_menu.addAction(toggle)
        if not self.store.collections():
            self.hide()  # View › Documents shows it; it opens by itself once there are some
        self._timer = QTimer(self)
        self._timer.setInterval(WATCH_MS)
        self._timer.timeout.connect(self.rescan)
        self._timer.start()
        self.refresh()

    # -- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        col = QVBoxLayout(body)
        col.addWidget(QLabel("Collections (checked: used by this chat)"))
        self.list = QListWidget()
        self.list.itemChanged.connect(lambda _item: self._selection_changed())
        col.addWidget(self.list, 2)
        row = QHBoxLayout()
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self._pick_folder)
        self.reindex_button = QPushButton("Reindex")
        self.reindex_button.clicked.connect(lambda: self.reindex(self._current()))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(lambda: self.remove(self._current()))
        for b in (self.add_folder_button, self.reindex_button, self.remove_button):
            row.addWidget(b)
        col.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        col.addWidget(self.progress)
        col.addWidget(self.status)
        settings = QHBoxLayout()
        settings.addWidget(QLabel("Budget (tokens)"))
        self.budget = QSpinBox()
        self.budget.setRange(50, 32_000)
        self.budget.setSingleStep(50)
        self.budget.setValue(int(self.store.setting("budget", str(DEFAULT_BUDGET))))
        self.budget.valueChanged.connect(
            lambda v: self.worker.run(lambda: self.store.set_setting("budget", str(v))))
        settings.addWidget(self.budget)
        self.template_button = QPushButton("Template…")
        self.template_button.clicked.connect(self.edit_template)
        settings.addWidget(self.template_button)
        col.addLayout(settings)
        self.breakdown = QLabel("")
        self.breakdown.setWordWrap(True)
        self.breakdown.setObjectName("breakdown")
        col.addWidget(self.breakdown)
        col.addWidget(QLabel("Sources of the last reply (double-click opens the file)"))
        self.sources = QListWidget()
        self.sources.itemDoubleClicked.connect(self._open_source)
        col.addWidget(self.sources, 1)
        self.setWidget(body)

    # -- collections -------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every collection (the watcher rescans them all)."""
        return [c.name for c in self.store.collections()]

    def selected(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def _current(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def refresh(self, checked: list[str] | None = None) -> None:
        """Reload the list (stats off the GUI thread), keeping or setting the checks."""
        keep = self.selected() if checked is None else checked

        def load() -> list[tuple[str, str]]:
            rows = []
            for c in self.store.collections():
                s = self.store.stats(c)
                vectors = "vectors" if c.embed_model else "keywords"
                failed = f", {s.failed} unreadable" if s.failed else ""
                rows.append((c.name, f"{c.name} — {s.files} files{failed}, {s.chunks} chunks, "
                                     f"{vectors}"))
            return rows

        self.worker.run(load, lambda rows: self._show(rows, keep), self._failed)

    def _show(self, rows: list[tuple[str, str]], checked: list[str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for name, text in rows:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in checked
                               else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)

    def add_folder(self, name: str, folder: Path) -> None:
        """Create or extend ``name`` with ``folder`` and index it (checked for this chat)."""
        def add() -> IndexReport:
            collection = self.store.find_collection(name) or self.store.create_collection(name)
            self.store.add_roots(collection, [folder])
            return self.indexer.index(collection.name)

        self.status.setText(f"Indexing {folder}…")
        self._check_next = name
        self.worker.run(add, self.indexed.emit, self._failed)

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of documents")
        if not folder:
            return
        default = self._current() or Path(folder).name
        name, ok = QInputDialog.getText(self, "Collection", "Add to the collection:",
                                        text=default)
        if ok and name.strip():
            self.add_folder(name.strip(), Path(folder))

    def reindex(self, name: str | None) -> None:
        if name:
            self.worker.run(lambda: self.indexer.index(name), self._on_indexed, self._failed)

    def rescan(self) -> None:
        """One polling round of the watched folders (on the worker, after queued work)."""
        self.worker.run(self.watcher.run_once, lambda _reports: None, self._failed)

    def remove(self, name: str | None) -> None:
        if name:
            self.worker.run(lambda: self.store.remove_collection(name),
                            lambda _: self.refresh(), self._failed)

    def edit_template(self) -> None:
        dialog = TemplateDialog(self.store.setting("template", SEED_TEMPLATE), self)
        if dialog.exec():
            text = dialog.editor.toPlainText()
            value = None if text == SEED_TEMPLATE else text
            self.worker.run(lambda: self.store.set_setting("template", value))

    # -- chats -------------------------------------------------------------------------
    def set_chat(self, chat_id: int | None) -> None:
        """Show the collections ``chat_id`` uses (a new chat keeps the current ones)."""
        self._chat_id = chat_id
        if chat_id is not None:
            self.worker.run(lambda: self.store.chat_collections(chat_id),
                            lambda names: self.refresh(names), self._failed)

    def _selection_changed(self) -> None:
        chat_id, names = self.window_.conversation.chat_id, self.selected()
        if chat_id is not None:
            self.worker.run(lambda: self.store.set_chat_collections(chat_id, names),
                            None, self._failed)

    def generate(self, request: GenerationRequest,
                 send: Callable[[GenerationRequest], None]) -> None:
        """Send ``request``: as is when the chat uses no collection, else with the documents
        prompt built on the worker (the breakdown shown first). If that fails the question
        goes without documents and the pane says why."""
        names = self.selected()
        if not names or not request.messages:
            send(request)
            return
        loaded = self.window_.loaded
        model_path = loaded.path if loaded is not None else None
        budget = self.budget.value()
        *history, question = request.messages

        def build() -> DocumentPrompt:
            tokenizer = self._tokenizer(model_path)
            template = self.store.setting("template", SEED_TEMPLATE)
            return build_document_prompt(names, question.content, list(history), budget,
                                         tokenizer, store=self.store, template=template)

        def ready(prompt: DocumentPrompt) -> None:
            self.last_prompt = prompt
            self.breakdown.setText(prompt.breakdown.text())
            self.promptReady.emit(prompt)
            send(replace(request, messages=prompt.messages))  # the rest as the chat set it

        def failed(err: Exception) -> None:
            self._failed(err)
            self.status.setText(f"{self.status.text()} — sent without documents.")
            send(request)

        self.worker.run(build, ready, failed)

    def _tokenizer(self, path: str | None) -> ModelTokenizer:
        from core.models.bundled import default_model_path

        key = path or str(default_model_path())
        if key not in self._tokenizers:
            self._tokenizers[key] = ModelTokenizer.open(Path(key))
        return self._tokenizers[key]

    def _on_reply(self, final: DoneEvent | ErrorEvent) -> None:
        """Sources of the reply: those it cites first (marked), then the rest it was given."""
        prompt, self.last_prompt = self.last_prompt, None
        self.sources.clear()
        if prompt is None or not isinstance(final, DoneEvent):
            return
        cited = {s.n for s in prompt.cite(final.text).cited}
        for s in sorted(prompt.sources, key=lambda s: (s.n not in cited, s.n)):
            item = QListWidgetItem(f"{'★ ' if s.n in cited else ''}[{s.n}] {s.label()}")
            item.setToolTip(s.text[:1200])
            item.setData(Qt.ItemDataRole.UserRole, s.path)
            self.sources.addItem(item)
        last = self.window_.view.last
        if last is not None and prompt.sources:
            last.layout().addWidget(SourcesStrip(prompt.sources, cited, last))
        self._selection_changed()  # a new chat has its id by now: remember its collections

    def _open_source(self, item: QListWidgetItem) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(item.data(Qt.ItemDataRole.UserRole)))

    # -- progress ----------------------------------------------------------------------
    def _on_progress(self, p: IndexProgress) -> None:
        busy = p.phase in ("index", "embed")
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, max(p.total, 1))
            self.progress.setValue(p.done)
            self.status.setText(p.text())

    def _on_indexed(self, report: IndexReport) -> None:
        self.progress.setVisible(False)
        self.status.setText(report.summary())
        self.status.setToolTip("\n".join(f"{path}: {error}" for path, error in report.failed))
        checked = self.selected()
        if self._check_next:  # a folder just added is used by this chat
            checked, self._check_next = [*checked, self._check_next], None
        self.refresh(checked)

    def _failed(self, err: Exception) -> None:
        log.error("documents: %s", err)
        self.progress.setVisible(False)
        self.status.setText(str(err) if isinstance(err, HearthError)
                            else f"Documents failed: {err}")

    def shutdown(self) -> None:
        self._timer.stop()
        self.indexer.cancel.set()
        self.worker.shutdown()
        for tokenizer in self._tokenizers.values():
            tokenizer.close()
        self.store.close()
