"""The Documents pane in the real window with the real model: a chat without collections is
sent unchanged; add a folder (progress), the chat uses it, the breakdown and the sources of
the reply are shown. One window for both (a window loads the model)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.documents_pane import SourcesStrip, TemplateDialog
from core.chat.documents import DocumentPrompt, IndexProgress
from core.chat.documents.template import SEED_TEMPLATE
from core.engine import DoneEvent
from tests.documents.corpus import Fact
from tests.fixtures.app_window import app_settings

TIMEOUT = 90_000


def test_a_folder_added_in_the_pane_answers_the_chat(qtbot, make_window,
                                                     corpus: tuple[Path, list[Fact]]) -> None:
    window = make_window(app_settings(max_tokens=8))
    pane = window.documents
    pane.budget.setValue(150)  # a short prompt: the test is about what is sent
    assert pane.isHidden()  # no collection yet
    prompts: list[DocumentPrompt] = []
    pane.promptReady.connect(prompts.append)
    window.input.setPlainText("Hello")
    with qtbot.waitSignal(window.replyFinished, timeout=TIMEOUT):
        window.send_button.click()
    assert prompts == [] and pane.sources.count() == 0  # no collection: sent unchanged
    steps: list[IndexProgress] = []
    pane.progressed.connect(steps.append)
    with qtbot.waitSignal(pane.indexed, timeout=TIMEOUT) as blocker:
        pane.add_folder("notes", corpus[0] / "md")
    report = blocker.args[0]
    assert len(report.added) == 40 and not report.failed
    assert [s.phase for s in steps if s.phase == "index"] and steps[-1].phase == "done"
    qtbot.waitUntil(lambda: pane.selected() == ["notes"], timeout=TIMEOUT)
    assert "notes — 40 files" in pane.list.item(0).text()
    fact = next(f for f in corpus[1] if f.path.suffix == ".md")
    window.input.setPlainText(f"Where is the {fact.code} archive kept?")
    with qtbot.waitSignal(window.replyFinished, timeout=TIMEOUT) as done:
        window.send_button.click()
    assert isinstance(done.args[0], DoneEvent)
    prompt = prompts[0]
    assert prompt.messages[-1].content.startswith("[CONTEXT]\n[1] ")
    assert prompt.sources[0].path == str(fact.path)
    assert pane.breakdown.text() == prompt.breakdown.text()
    assert prompt.breakdown.budget == 150 and prompt.breakdown.documents <= 150
    assert "documents" in pane.breakdown.text() and "question" in pane.breakdown.text()
    labels = [pane.sources.item(i).text() for i in range(pane.sources.count())]
    assert len(labels) == len(prompt.sources)
    assert any(f"[1] {prompt.sources[0].label()}" in label for label in labels)
    paths = {pane.sources.item(i).data(Qt.ItemDataRole.UserRole)
             for i in range(pane.sources.count())}
    assert paths == {s.path for s in prompt.sources}  # what "open the file" opens
    strip = window.view.last.findChild(SourcesStrip, "sources")
    assert strip is not None and set(strip.sources) == {str(s.n) for s in prompt.sources}
    assert f"[1] {prompt.sources[0].label()}" in strip.text()
    chat_id = window.conversation.chat_id
    qtbot.waitUntil(lambda: pane.store.chat_collections(chat_id) == ["notes"], timeout=TIMEOUT)


def test_the_template_dialog_refuses_a_template_without_placeholders(qtbot) -> None:
    dialog = TemplateDialog(SEED_TEMPLATE)
    qtbot.addWidget(dialog)
    dialog.editor.setPlainText("[CONTEXT]\n{relevant_documents}\n")
    dialog._accept()
    assert "{user_query}" in dialog.error.text() and dialog.result() == 0
    dialog.editor.setPlainText(SEED_TEMPLATE)
    dialog._accept()
    assert dialog.result() == 1
