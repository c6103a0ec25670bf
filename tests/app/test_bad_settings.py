"""A bad value in settings.json is shown on the window's status line at launch (and kept in
the log and in settings.json.bad), while every other setting applies."""

from __future__ import annotations

import json
from pathlib import Path


def test_a_bad_setting_is_shown_at_launch(qtbot, qapp, isolated_home: Path) -> None:
    from app.main import launch, parse_args

    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "settings.json").write_text(json.dumps({"n_ctx": 2048, "threads": -3}))
    launched = launch(qapp, parse_args([]))
    window = launched.window
    try:
        with qtbot.waitSignal(window.modelLoaded, timeout=120_000):
            pass
        qtbot.wait(50)
        shown = window.statusBar().currentMessage()
        assert "threads" in shown and "settings.json.bad" in shown
        assert window.settings.n_ctx == 2048 and window.settings.threads == 0
        assert (isolated_home / "settings.json.bad").is_file()
    finally:
        launched.close()
