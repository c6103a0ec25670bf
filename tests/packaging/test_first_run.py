"""First run: nothing configured, no network -> a chat with the built-in model ready, a
welcome that points to the model picker, and start-up progress in the status bar."""

from __future__ import annotations

import time
from pathlib import Path

from tests.paths import ARTIFACTS


def _launch(qapp):
    from app.main import launch, parse_args

    return launch(qapp, parse_args([]))


def test_first_run_opens_to_a_ready_chat_with_a_welcome(qtbot, qapp, isolated_home: Path) -> None:
    from app.first_run import is_first_run
    from core.models.chat_model import CHAT_MODEL_NAME

    assert is_first_run()
    steps: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    launched = _launch(qapp)
    window = launched.window
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

        def step(text: str) -> None:
            steps.append((time.perf_counter(), text))
            if text.startswith("Loading "):  # the status bar mid start-up, for a person
                window.grab().save(str(ARTIFACTS / "first-run-starting.png"))

        launched.progress.stepChanged.connect(step)
        shown_at = time.perf_counter()
        assert window.isVisible() and shown_at - t0 < 5, "the window waits for nothing"
        banner = window.welcome
        assert banner is not None and banner.isVisible()
        assert "File › Models…" in banner.text.text() and "Ctrl+M" in banner.text.text()
        with qtbot.waitSignal(window.modelLoaded, timeout=120_000):
            pass
        assembled = isolated_home / "models" / CHAT_MODEL_NAME  # made by this first run
        assert assembled.is_file() and Path(window.loaded.path) == assembled
        assert window.model_label.text() == window.loaded.model_name
        assert window.send_button.isEnabled()
        texts = [t for _, t in steps]
        assert any(t.startswith("Loading ") for t in texts), texts
        assert texts[-1].startswith("Ready"), texts
        assert not launched.progress.bar.isVisible()
        window.resize(1024, 700)
        qapp.processEvents()
        shot = ARTIFACTS / "first-run-window.png"
        assert window.grab().save(str(shot)) and shot.stat().st_size > 10_000
        # The banner's button opens the picker; "Got it" hides the banner.
        opened = []
        window.open_model_picker = lambda: opened.append(True)  # the picker has its own tests
        banner.modelsRequested.disconnect()
        banner.modelsRequested.connect(window.open_model_picker)
        banner.models_button.click()
        assert opened == [True]
        banner.close_button.click()
        assert not banner.isVisible()
    finally:
        launched.close()
    assert not is_first_run()


def test_later_runs_have_no_welcome(qtbot, qapp) -> None:
    from app.first_run import mark_welcomed

    mark_welcomed()
    from app.main import launch, parse_args

    launched = launch(qapp, parse_args(["--no-model"]))
    try:
        assert launched.window.welcome is None
        assert launched.window.statusBar().currentMessage() == "No model loaded."
    finally:
        launched.close()


def test_assembly_progress_is_read_from_the_growing_part_file(qtbot, tmp_path: Path) -> None:
    """The percentage comes from the real ``.part`` file's size against the chunks' total."""
    from PySide6.QtWidgets import QMainWindow

    from app.first_run import StartupProgress, chunk_total

    window = QMainWindow()
    qtbot.addWidget(window)
    progress = StartupProgress(window, folder=tmp_path)
    steps: list[str] = []
    progress.stepChanged.connect(steps.append)
    progress.preparing()
    part = tmp_path / ".gemma-3-270m-q4_k_m.gguf.123.part"
    part.write_bytes(b"\0" * (chunk_total() // 4))
    qtbot.waitUntil(lambda: progress.bar.value() == 25, timeout=5000)
    assert steps[-1].startswith("First run: unpacking")
    progress.loading("model.gguf")
    assert progress.bar.maximum() == 0 and steps[-1] == "Loading model.gguf…"
