"""The pool in the real window: each chat remembers its model and brings it back without a
reload while it is resident; the Loaded models view and the status bar say what is loaded;
its Unload button ends that model's worker."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.engine import DoneEvent
from core.engine.pool import EnginePool
from tests.fixtures.app_window import app_settings
from tests.pool.conftest import N_CTX, Models

TIMEOUT = 90_000


@pytest.fixture
def window(qtbot, pool: EnginePool, models: Models, tmp_path: Path) -> Iterator:
    from app.bridge import EngineBridge
    from app.loaded_models import PoolControls
    from app.main_window import MainWindow
    from core.chat.history import HistoryStore

    pool.set_budget(models.both)
    history = HistoryStore(tmp_path / "history.sqlite3")
    bridge = EngineBridge(pool.backend_for())
    win = MainWindow(app_settings(n_ctx=N_CTX, max_tokens=8), history, bridge)
    win.pool_controls = PoolControls(win, pool)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    bridge.shutdown()  # the view's own requests only: the shared pool stays up
    history.close()


def _load(qtbot, window, path: Path) -> None:
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT):
        window.load_model(path)


def _chat_with(qtbot, window, text: str) -> int:
    window.input.setPlainText(text)
    with qtbot.waitSignal(window.replyFinished, timeout=TIMEOUT) as blocker:
        window.send_button.click()
    assert isinstance(blocker.args[0], DoneEvent)
    qtbot.waitUntil(lambda: window.conversation.chat_id is not None, timeout=5000)
    chat_id = window.conversation.chat_id
    path = window.loaded.path
    qtbot.waitUntil(lambda: window.history.get_chat(chat_id).model == path, timeout=5000)
    return chat_id


def test_each_chat_remembers_its_model(qtbot, window, pool: EnginePool,
                                       models: Models) -> None:
    q4, q8 = models.q4.model_path, models.q8.model_path
    _load(qtbot, window, q4)
    first = _chat_with(qtbot, window, "Hello")
    window.new_chat()
    _load(qtbot, window, q8)
    second = _chat_with(qtbot, window, "Good morning")
    assert window.history.get_chat(first).model != window.history.get_chat(second).model

    loads = pool.loads()
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT) as blocker:
        window.chat_list.chatSelected.emit(first)  # the user clicks the first chat
    assert Path(blocker.args[0].path).resolve() == q4.resolve()
    assert pool.loads() == loads  # still resident: back at once, no reload
    qtbot.waitUntil(lambda: window.conversation.chat_id == first, timeout=5000)

    controls = window.pool_controls
    controls.refresh_status()
    line = controls.label.text()
    assert line.startswith("Loaded: ") and q4.stem in line and q8.stem in line


def test_loaded_models_view_shows_memory_and_unloads(qtbot, window, pool: EnginePool,
                                                     models: Models) -> None:
    q8 = models.q8.model_path
    _load(qtbot, window, models.q4.model_path)
    _load(qtbot, window, q8)
    view = window.pool_controls.show_view()
    names = [view.table.item(i, 0).text() for i in range(view.table.rowCount())]
    assert sorted(names) == sorted([models.q4.model_path.stem, q8.stem])
    row = names.index(q8.stem)
    assert view.table.item(row, 1).text().startswith("loaded")
    assert view.table.item(row, 2).text().endswith("MiB")  # the worker's measured RSS
    pid = next(r.worker_pid for r in view.rows if r.name == q8.name)
    view.table.cellWidget(row, view.table.columnCount() - 1).click()
    qtbot.waitUntil(lambda: not psutil.pid_exists(pid), timeout=20_000)
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=5000)
    window.pool_controls.refresh_status()
    assert q8.stem not in window.pool_controls.label.text()
