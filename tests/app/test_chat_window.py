"""The chat window a user expects (issue 18): Enter sends, focus in the message box, the
last chat back after a restart, a failed background job shown and logged, no display ->
one line and exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from core.engine import DoneEvent
from tests.fixtures.app_window import app_settings
from tests.fixtures.launching import HEARTH

REPLY_TIMEOUT = 60_000


def test_enter_sends_and_shift_enter_makes_a_new_line(qtbot, make_window) -> None:
    window = make_window(app_settings(max_tokens=8))
    qtbot.keyClicks(window.input, "Name a colour.")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input, "One word.")
    assert window.input.toPlainText() == "Name a colour.\nOne word."
    assert window.view.messages == []  # Shift+Enter sent nothing
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert isinstance(blocker.args[0], DoneEvent)
    assert window.view.messages[0].raw == "Name a colour.\nOne word."
    assert window.input.toPlainText() == ""
    # Focus is back in the message box after the reply: the next message can be typed.
    assert QApplication.focusWidget() is window.input


def test_ctrl_enter_habit_setting(qtbot, make_window) -> None:
    window = make_window(app_settings(max_tokens=8, send_with="ctrl+enter"))
    qtbot.keyClicks(window.input, "Hi")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.input.toPlainText() == "Hi\n" and window.view.messages == []
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert [m.role for m in window.view.messages] == ["user", "assistant"]


def test_focus_is_in_the_message_box_at_start(qtbot, make_window) -> None:
    window = make_window(load=False)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.input, timeout=5000)
    qtbot.keyClicks(QApplication.focusWidget(), "typed at once")
    assert window.input.toPlainText() == "typed at once"  # no first word lost


def test_the_last_chat_is_shown_after_a_restart(qtbot, make_window) -> None:
    window = make_window(app_settings(max_tokens=8))
    window.input.setPlainText("Remember me.")
    with qtbot.waitSignal(window.replyFinished, timeout=REPLY_TIMEOUT) as blocker:
        window.send()
    qtbot.waitUntil(lambda: window.chat_list.list.count() == 1, timeout=5000)
    chat_id = window.conversation.chat_id
    settings = window.settings
    window.close()  # saves the settings, the open chat among them
    assert settings.last_chat_id == chat_id
    again = make_window(settings, load=False)
    qtbot.waitUntil(lambda: len(again.view.messages) == 2, timeout=5000)
    assert again.conversation.chat_id == chat_id
    assert [m.raw for m in again.view.messages] == ["Remember me.", blocker.args[0].text]
    assert again.chat_list.list.currentItem().data(Qt.ItemDataRole.UserRole) == chat_id


def test_a_failed_background_job_is_shown_and_logged(qtbot, make_window,
                                                     isolated_home: Path) -> None:
    from core.log import configure, log_file

    configure()
    window = make_window(load=False)
    window.history.close()  # every history call now fails for real
    with qtbot.waitSignal(window.errorShown, timeout=5000) as blocker:
        window.refresh_chats()  # a job given no error handler of its own
    message = blocker.args[0]
    assert "closed" in message
    assert message in window.statusBar().currentMessage()
    for handler in __import__("logging").getLogger("hearth").handlers:
        handler.flush()
    logged = log_file().read_text()
    assert "history job failed" in logged and message in logged
    assert log_file().is_relative_to(isolated_home)


def test_no_display_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY") and not k.startswith("QT_QPA")}
    env["HEARTH_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([str(HEARTH)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "no display" in lines[0] and "hearth-cli chat" in lines[0]
    assert "hearth-cli serve" in lines[0] and "xcb" not in lines[0]
    # A DISPLAY that cannot be opened (X forwarding off, a stale variable) says so too.
    env["DISPLAY"] = ":97"
    proc = subprocess.run([str(HEARTH)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "cannot open the display ':97'" in proc.stderr


def test_x11_updates_go_over_the_socket_unless_the_user_chose_otherwise() -> None:
    from app.display import prefer_socket_uploads

    env: dict[str, str] = {}
    prefer_socket_uploads(env)
    assert env == {"QT_XCB_NO_MITSHM": "1"}  # no completion event per flush (issue 18)
    env = {"QT_XCB_NO_MITSHM": "0"}
    prefer_socket_uploads(env)
    assert env == {"QT_XCB_NO_MITSHM": "0"}
