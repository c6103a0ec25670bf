"""The installed ``hearth`` entry point on a real X server (Xvfb), and screenshots.

The offscreen platform hides platform-plugin problems (missing xcb libraries abort Qt
before any window exists), so one test starts the real program under Xvfb, as a
double-click would, and waits for a real reply. Screenshots land in ``test-artifacts/``
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.app_window import app_settings
from tests.paths import ARTIFACTS, REPO_ROOT

HEARTH = Path(sys.executable).parent / "hearth"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_QPA")}
    env.update({"HEARTH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT), **extra})
    return env


def test_hearth_entry_point_answers_on_a_real_x_server(tmp_path: Path,
                                                       default_model: Path) -> None:
    xvfb = shutil.which("xvfb-run")
    assert xvfb, "Xvfb is missing: packaging/system-deps.sh installs it (make test runs it)"
    assert HEARTH.is_file(), "the hearth entry point is not installed (make test installs it)"
    proc = subprocess.run(
        [xvfb, "-a", "-s", "-screen 0 1280x800x24", str(HEARTH), "--model", str(default_model),
         "--smoke", "The capital of France is", "--max-tokens", "12"],
        capture_output=True, text=True, timeout=180, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), "no reply printed"
    assert "Could not load the Qt platform plugin" not in proc.stderr


def test_screenshots_at_1280x800_and_1920x1080_on_a_real_x_server(tmp_path: Path,
                                                                chat_model: Path) -> None:
    """Mid-stream, a long code block, the panel open and closed, at both sizes; a person
    looks at them in test-artifacts/. No size shows the transcript's sideways scroll bar."""
    import json

    xvfb = shutil.which("xvfb-run")
    assert xvfb, "Xvfb is missing: packaging/system-deps.sh installs it (make test runs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [xvfb, "-a", "-s", "-screen 0 1920x1080x24", sys.executable, "-m",
         "tests.app.screenshot_script", str(ARTIFACTS), str(chat_model)],
        capture_output=True, text=True, timeout=400, env=_env(tmp_path), cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert len(report["shots"]) == 6 and not any(report["hscroll"])
    for name in report["shots"]:
        assert (ARTIFACTS / name).stat().st_size > 20_000, name


def _grab(widget, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path


def test_screenshots_mid_stream_and_settings(qtbot, make_window) -> None:
    from app.settings_dialog import SettingsDialog

    window = make_window(app_settings(max_tokens=400))
    window.resize(1024, 700)
    chunks: list[str] = []
    window.bridge.textReady.connect(chunks.append)
    window.system_prompt.setText("You are a concise assistant.")
    window.input.setPlainText("Write a short story about a lighthouse keeper.")
    window.send_button.click()
    qtbot.waitUntil(lambda: len(chunks) >= 12, timeout=60_000)
    shot = _grab(window, "main-window-streaming.png")
    with qtbot.waitSignal(window.replyFinished, timeout=60_000):
        window.stop()
    assert shot.stat().st_size > 10_000
    # At 1024x700 the input and its buttons are inside the window.
    for widget in (window.input, window.send_button, window.stop_button):
        top_left = widget.mapTo(window, widget.rect().topLeft())
        assert top_left.y() >= 0 and top_left.y() + widget.height() <= window.height()
    dialog = SettingsDialog(window.settings, window)
    dialog.show()
    qtbot.addWidget(dialog)
    _grab(dialog, "settings-dialog.png")
    dialog.reject()


SCALED_SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication
from app.bridge import EngineBridge
from app.main import local_engine
from app.main_window import MainWindow
from core.chat.history import HistoryStore
from core.settings import Settings
app = QApplication([])
window = MainWindow(Settings(), HistoryStore(), EngineBridge(local_engine()))
window.resize(1024, 700)
window.show()
window.view.add("user", "How do I reverse a list in Python?")
reply = window.view.add("assistant", "Use slicing:\\n\\n```python\\nitems[::-1]\\n```\\n\\nor "
                        "`items.reverse()` to do it **in place**.")
reply.set_footer("TTFT 31 ms · 104.2 tok/s · 38 tokens · prompt 24 (0 cached)")
app.processEvents()
ok = window.grab().save(sys.argv[1])
print(window.devicePixelRatio(), window.grab().size().width())
window.bridge.client.close()
sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize("scale", ["1", "2"])
def test_window_renders_at_100_and_200_percent(tmp_path: Path, scale: str) -> None:
    out = ARTIFACTS / f"main-window-{int(scale) * 100}pct.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", SCALED_SCRIPT, str(out)], capture_output=True,
                          text=True, timeout=120, cwd=REPO_ROOT,
                          env=_env(tmp_path, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR=scale))
    assert proc.returncode == 0, proc.stderr[-2000:]
    ratio, width = proc.stdout.split()
    assert float(ratio) == float(scale)
    assert int(width) == 1024 * int(scale)  # drawn at full resolution, not upscaled
