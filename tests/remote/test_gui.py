"""The desktop app on a remote engine, driven as a user does: Settings › Engines adds and
tests the endpoint, File › Models… › Remote picks its model, the chat streams from it, the
panel says power and energy are unknown and its tok/s matches the test's own clock; Stop
ends the generation on the server; 503/429 are waited out; a dropped connection is an
inline error that keeps the text; a wrong key is a clear message; the key is in no log,
setting or history row."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.engine import DoneEvent, ErrorEvent
from core.models.engines import Endpoint, EndpointStore
from tests.fixtures.app_window import app_settings
from tests.paths import ARTIFACTS
from tests.remote.conftest import API_KEY
from tests.remote.flaky_proxy import FlakyProxy
from tests.remote.servers import ALIAS, HearthServe, LlamaServer

TIMEOUT = 60_000
REMOTE = "unknown (remote engine)"


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator:
    from app.bridge import EngineBridge
    from app.main import local_engine
    from app.main_window import MainWindow
    from core.chat.history import HistoryStore
    from core.log import configure

    configure()  # Hearth's log file, as the app writes it (checked for the key below)
    history = HistoryStore(tmp_path / "history.sqlite3")
    bridge = EngineBridge(local_engine())
    win = MainWindow(app_settings(max_tokens=160), history, bridge)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.panel is not None, timeout=30_000)
    yield win
    if win.isVisible():
        win.close()
    bridge.shutdown()
    history.close()


def use(qtbot, win, endpoint: Endpoint, model: str = ALIAS) -> None:
    from app.engines_dialog import load_remote

    with qtbot.waitSignal(win.modelLoaded, timeout=TIMEOUT):
        load_remote(win, endpoint, model)


def send(qtbot, win, text: str, during: Callable[[list[str]], None] | None = None):
    chunks: list[str] = []
    win.bridge.textReady.connect(chunks.append)
    win.input.setPlainText(text)
    with qtbot.waitSignal(win.replyFinished, timeout=TIMEOUT) as blocker:
        win.send_button.click()
        if during is not None:
            during(chunks)
    win.bridge.textReady.disconnect(chunks.append)
    return blocker.args[0], chunks


def flush_io(qtbot, win) -> None:
    """Wait until the window's history thread has done everything queued so far."""
    done: list[bool] = []
    win.io.run(lambda: None, lambda _: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=5000)


def menu_action(win, text: str):
    for menu in win.menuBar().actions():
        for action in menu.menu().actions():
            if action.text().replace("&", "") == text:
                return action
    raise AssertionError(f"no menu item {text!r}")


def test_add_test_pick_and_chat_on_a_remote_engine(qtbot, window, keyed_server: LlamaServer,
                                                    isolated_home: Path,
                                                    tmp_path: Path) -> None:
    from app.model_picker import ModelPicker

    menu_action(window, "Engines…").trigger()
    dialog = window.engines_dialog
    dialog.name.setText("keyed box")
    dialog.url.setText(f"127.0.0.1:{keyed_server.port}")  # as a user types it
    dialog.key.setText(API_KEY)
    with qtbot.waitSignal(dialog.tested, timeout=TIMEOUT):
        dialog.test_button.click()
    assert re.fullmatch(r"Connected to llama-server in \d+ ms: 1 model \(gemma-keyed\)\.",
                        dialog.status.text()), dialog.status.text()
    with qtbot.waitSignal(dialog.changed, timeout=TIMEOUT):
        dialog.add_button.click()
    assert "key in a file only you can read" in dialog.status.text()
    dialog.accept()

    window.open_model_picker()
    picker = window.findChildren(ModelPicker)[-1]
    picker.tabs.setCurrentWidget(picker.remote_tab)
    table = picker.remote_tab.table
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=TIMEOUT)
    row = [table.item(0, c).text() for c in range(table.columnCount())]
    assert row[:3] == ["gemma-keyed", "keyed box", "remote · llama-server"]
    assert row[4] == keyed_server.url
    table.selectRow(0)
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT):
        picker.load_button.click()
    assert window.model_label.text() == "gemma-keyed"
    assert window.place_label.text() == f"remote: llama-server at 127.0.0.1:{keyed_server.port}"

    stamps: list[int] = []
    window.bridge.textReady.connect(lambda _t: stamps.append(time.perf_counter_ns()))
    shown: list[str] = []
    window.replyFinished.connect(lambda _f: shown.append(window.panel.labels["speed"].text()))
    before = keyed_server.wait_idle()["tokens_predicted_total"]
    final, chunks = send(qtbot, window, "Write a very long story about a dragon.")
    assert isinstance(final, DoneEvent), final
    assert len(chunks) >= 3 and "".join(chunks) == final.text == window.view.last.raw
    assert "tok/s" in window.view.last.footer.text()

    panel = window.panel
    n_tokens = final.metrics.decode_tokens
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.resize(1280, 800)
    window.grab().save(str(ARTIFACTS / "remote-chat.png"))
    for key in ("power", "energy", "cost"):
        assert panel.labels[key].text() == REMOTE, key
    assert panel.formula.text() == REMOTE and panel.last.joules is None
    assert panel.labels["session"].text() == f"1 reply, {n_tokens} tokens; energy {REMOTE}"
    assert "remote engine's: unknown" in panel.power_plot.getPlotItem().titleLabel.text
    # The test's own clock: when the text reached the window, and the server's count.
    n = keyed_server.wait_idle()["tokens_predicted_total"] - before
    assert n == final.metrics.decode_tokens >= 60
    own = (n - 1) / ((stamps[-1] - stamps[0]) / 1e9)
    panel_speed = float(shown[0].split(" tok/s")[0])
    print(f"\npanel {panel_speed:.1f} tok/s, test clock {own:.1f} tok/s over {n:.0f} tokens")
    assert panel_speed == pytest.approx(own, rel=0.02)

    # The key is nowhere but the owner-only key file.
    flush_io(qtbot, window)
    window.close()  # writes the settings, as quitting does
    logs = isolated_home / "logs" / "hearth.log"
    assert "gemma-keyed" in logs.read_text()  # the log was written, just without the key
    files = [p for p in [*isolated_home.rglob("*"), *tmp_path.glob("history.sqlite3*")]
             if p.is_file() and p.name != "secrets.json"]
    assert any(p.name.startswith("history.sqlite3") for p in files)
    assert (isolated_home / "settings.json").is_file()
    assert (isolated_home / "engines.json").is_file()
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY in (isolated_home / "secrets.json").read_text()


def test_stop_ends_the_generation_on_the_server(qtbot, window,
                                                llama_server: LlamaServer) -> None:
    use(qtbot, window, EndpointStore().add(llama_server.url))
    window.settings.max_tokens = 3000
    before = llama_server.wait_idle()["tokens_predicted_total"]

    def stop_soon(chunks: list[str]) -> None:
        qtbot.waitUntil(lambda: len(chunks) >= 3, timeout=TIMEOUT)
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)

    final, _ = send(qtbot, window, "Write a very long story about a dragon.", stop_soon)
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert final.text and window.view.last.raw == final.text
    after = llama_server.wait_idle()
    assert after["requests_processing"] == 0
    assert after["tokens_predicted_total"] - before < 300


def test_a_chat_streams_from_another_hearth(qtbot, window,
                                            hearth_server: HearthServe) -> None:
    from core.engine.remote import RemoteBackend

    with RemoteBackend(hearth_server.url) as probe:
        model = probe.models()[0].id
    use(qtbot, window, EndpointStore().add(hearth_server.url, name="other hearth"), model)
    assert window.place_label.text() == f"remote: Hearth at 127.0.0.1:{hearth_server.port}"
    window.settings.max_tokens = 24
    final, chunks = send(qtbot, window, "Tell me about the sea.")
    assert isinstance(final, DoneEvent) and len(chunks) >= 3
    assert "".join(chunks) == final.text == window.view.last.raw
    assert window.panel.labels["power"].text() == REMOTE
    assert window.panel.labels["energy"].text() == REMOTE


def test_back_to_a_local_model_after_a_remote_one(qtbot, window, llama_server: LlamaServer,
                                                  default_model: Path) -> None:
    from core.engine.process.client import EngineClient

    use(qtbot, window, EndpointStore().add(llama_server.url))
    remote = window.bridge.client
    window.settings.max_tokens = 8
    assert isinstance(send(qtbot, window, "Hi")[0], DoneEvent)
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT) as blocker:
        window.load_model(default_model)
    assert blocker.args[0].source == "local" and isinstance(window.bridge.client, EngineClient)
    assert remote.loaded is None  # the remote backend was closed
    final, _ = send(qtbot, window, "Hi")
    assert isinstance(final, DoneEvent) and final.template == "gemma"
    assert window.panel.last.energy.label != REMOTE  # this computer's energy, measured here
    qtbot.waitUntil(lambda: window.panel.labels["power"].text() != REMOTE, timeout=5000)


def test_busy_engine_is_waited_out(qtbot, window, flaky_proxy: FlakyProxy) -> None:
    use(qtbot, window, EndpointStore().add(flaky_proxy.url))
    window.settings.max_tokens = 16
    flaky_proxy.fail_next((503, "1"), (429, "1"))
    final, chunks = send(qtbot, window, "Name a fruit.")
    assert isinstance(final, DoneEvent) and chunks
    (t1, s1), (t2, s2), (t3, s3) = flaky_proxy.arrivals
    assert (s1, s2, s3) == (503, 429, 200)
    assert 1.0 <= t2 - t1 < 1.4 and 1.0 <= t3 - t2 < 1.4


def test_dropped_connection_is_an_inline_error_with_the_text_kept(
        qtbot, window, doomed_server: Callable[[], LlamaServer], tmp_path: Path) -> None:
    server = doomed_server()
    use(qtbot, window, EndpointStore().add(server.url))
    window.settings.max_tokens = 3000

    def kill_soon(chunks: list[str]) -> None:
        qtbot.waitUntil(lambda: len(chunks) >= 3, timeout=TIMEOUT)
        server.kill()

    final, _ = send(qtbot, window, "Write a very long story about a dragon.", kill_soon)
    assert isinstance(final, ErrorEvent), final
    assert window.view.last.role == "error" and "dropped" in window.view.last.raw
    assert window.view.messages[-2].raw == final.partial_text != ""
    assert window.send_button.isEnabled()
    flush_io(qtbot, window)
    chat_id = window.conversation.chat_id
    saved = window.history.messages(chat_id)[-1]
    assert saved.content == final.partial_text and "dropped" in (saved.error or "")


def test_wrong_key_is_a_clear_message(qtbot, window, keyed_server: LlamaServer,
                                      isolated_home: Path) -> None:
    from app.engines_dialog import EnginesDialog

    dialog = EnginesDialog(parent=window)
    dialog.url.setText(keyed_server.url)
    dialog.key.setText("sk-not-the-key")
    with qtbot.waitSignal(dialog.tested, timeout=TIMEOUT) as blocker:
        dialog.test_button.click()
    assert "refused the API key (401" in blocker.args[0]
    assert dialog.status.text() == blocker.args[0] and "sk-not-the-key" not in blocker.args[0]
    endpoint = EndpointStore().add(keyed_server.url, "sk-not-the-key")
    from app.engines_dialog import load_remote

    with qtbot.waitSignal(window.bridge.loadFailed, timeout=TIMEOUT):
        load_remote(window, endpoint, "gemma-keyed")
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert "refused the API key" in window.error_dialog.text()
    log = (isolated_home / "logs" / "hearth.log").read_text()
    assert "refused the API key" in log and "sk-not-the-key" not in log
