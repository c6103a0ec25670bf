"""The desktop app driven as a user would, with the real model in the real worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from PySide6.QtCore import Qt

from core.engine import DoneEvent, ErrorEvent
from tests.fixtures.app_window import app_settings

REPLY_TIMEOUT = 60_000


def send(qtbot, window, text: str):
    """Type and send a message; return the final event of the reply."""
    window.input.setPlainText(text)
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        window.send_button.click()
    return blocker.args[0]


def test_streamed_reply_arrives_in_several_updates(qtbot, make_window) -> None:
    window = make_window()
    updates: list[str] = []
    window.bridge.textReady.connect(updates.append)
    final = send(qtbot, window, "Tell me about the sea.")
    assert isinstance(final, DoneEvent)
    assert len(updates) >= 3, updates
    assert "".join(updates) == final.text
    assert window.view.last.raw == final.text
    assert "tok/s" in window.view.last.footer.text()
    assert window.speed_label.text().endswith("tok/s")
    roles = [m.role for m in window.view.messages]
    assert roles == ["user", "assistant"]


def test_stop_halts_quickly_and_keeps_partial_text(qtbot, make_window) -> None:
    window = make_window(app_settings(max_tokens=4000))
    window.input.setPlainText("Write a very long story about a dragon.")
    first_text = []
    window.bridge.textReady.connect(first_text.append)
    window.send_button.click()
    qtbot.waitUntil(lambda: len(first_text) >= 3, timeout=REPLY_TIMEOUT)
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        t0 = time.perf_counter()
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)  # the Stop shortcut
    elapsed = time.perf_counter() - t0
    print(f"\nstop -> reply finished: {elapsed * 1000:.0f} ms")
    final = blocker.args[0]
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert elapsed < 0.2
    assert final.text and window.view.last.raw == final.text
    assert window.send_button.isEnabled()


def test_stop_cancels_only_the_windows_request(qtbot, make_window) -> None:
    """The window's engine can be shared (Server › Start local server): Stop must end the
    window's reply and leave another consumer's request of the same worker running."""
    import threading

    from core.engine import GenerationRequest, SamplingParams

    window = make_window(app_settings(max_tokens=4000))
    first_text: list[str] = []
    window.bridge.textReady.connect(first_text.append)
    window.input.setPlainText("Write a very long story about a dragon.")
    window.send_button.click()
    qtbot.waitUntil(lambda: len(first_text) >= 3, timeout=REPLY_TIMEOUT)
    other: list[object] = []
    request = GenerationRequest(prompt="The river", max_tokens=24, ignore_eos=True,
                                sampling=SamplingParams.greedy())
    consumer = threading.Thread(
        target=lambda: other.extend(window.bridge.client.generate(request)), daemon=True)
    consumer.start()
    qtbot.waitUntil(lambda: window.bridge.client.in_flight == 2, timeout=10_000)
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    assert isinstance(blocker.args[0], DoneEvent)
    assert blocker.args[0].finish_reason == "cancelled"
    consumer.join(60)
    final = other[-1]
    assert isinstance(final, DoneEvent) and final.finish_reason == "length", final
    assert final.metrics.decode_tokens == 24


def test_regenerate_replaces_the_reply(qtbot, make_window) -> None:
    window = make_window()
    send(qtbot, window, "Name a fruit.")
    assert len(window.view.messages) == 2
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        window.regenerate()
    assert isinstance(blocker.args[0], DoneEvent)
    assert [m.role for m in window.view.messages] == ["user", "assistant"]
    assert [t.role for t in window.conversation.turns] == ["user", "assistant"]


def test_history_survives_a_restart(qtbot, make_window) -> None:
    window = make_window()
    final = send(qtbot, window, "Name a colour.")
    qtbot.waitUntil(lambda: window.chat_list.list.count() == 1, timeout=5000)
    window.close()
    again = make_window(load=False)
    qtbot.waitUntil(lambda: again.chat_list.list.count() == 1, timeout=5000)
    chat_id = again.chat_list.chat_ids()[0]
    again.open_chat(chat_id)
    qtbot.waitUntil(lambda: len(again.view.messages) == 2, timeout=5000)
    user, reply = again.view.messages
    assert user.raw == "Name a colour." and reply.raw == final.text
    assert f"{final.metrics.decode_tokens} tokens" in reply.footer.text()


def test_corrupt_model_shows_error_and_app_stays_usable(qtbot, make_window,
                                                        tmp_path: Path,
                                                        default_model: Path) -> None:
    window = make_window()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with qtbot.waitSignal(window.bridge.loadFailed, timeout=REPLY_TIMEOUT):
        window.load_model(bad)
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert "broken.gguf" in window.error_dialog.text() or "GGUF" in window.error_dialog.text()
    window.error_dialog.accept()
    with qtbot.waitSignal(window.modelLoaded, timeout=REPLY_TIMEOUT):
        window.load_model(default_model)
    assert isinstance(send(qtbot, window, "Hello"), DoneEvent)


def test_killed_worker_shows_inline_error_and_next_message_works(qtbot,
                                                                 make_window) -> None:
    window = make_window(app_settings(max_tokens=4000))
    chunks = []
    window.bridge.textReady.connect(chunks.append)
    window.input.setPlainText("Write a long story.")
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        window.send_button.click()
        qtbot.waitUntil(lambda: len(chunks) >= 2, timeout=REPLY_TIMEOUT)
        killed = window.bridge.client.worker_pid
        assert window.bridge.worker_pid == killed  # the bridge's copy, for the panel
        os.kill(killed, signal.SIGKILL)
    final = blocker.args[0]
    assert isinstance(final, ErrorEvent) and final.kind == "WorkerDied"
    assert window.view.last.role == "error" and "engine process" in window.view.last.raw
    assert window.view.messages[-2].raw == final.partial_text != ""
    window.settings.max_tokens = 16  # the story above was meant to run long; this is not
    assert isinstance(send(qtbot, window, "Hello again"), DoneEvent)
    # The panel follows the new worker: the bridge read its pid when the request began.
    assert window.bridge.worker_pid == window.bridge.client.worker_pid != killed
