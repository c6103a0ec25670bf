"""First launch in an empty home, offline: the chat window opens on the bundled instruct
model, a question gets an answer, and the welcome card says which model answered and
leaves with the first message."""

from __future__ import annotations

from pathlib import Path

from core.engine import DoneEvent


def test_a_first_question_is_answered_by_the_instruct_model(qtbot, qapp,
                                                            isolated_home: Path) -> None:
    from app.first_run import is_first_run
    from app.main import launch, parse_args
    from core.models.bundled import DEFAULT_MODEL_NAME
    from core.models.chat_model import CHAT_MODEL_NAME

    assert is_first_run() and not (isolated_home / "models").exists()
    assert not (isolated_home / "settings.json").exists()
    launched = launch(qapp, parse_args([]))
    window = launched.window
    try:
        banner = window.welcome
        assert banner is not None and banner.isVisible()
        assert "SmolLM2" in banner.text.text() and "tiny" in banner.text.text()
        with qtbot.waitSignal(window.modelLoaded, timeout=120_000) as loaded:
            pass
        path = Path(loaded.args[0].path)
        assert path == isolated_home / "models" / CHAT_MODEL_NAME and path.name != \
            DEFAULT_MODEL_NAME
        assert loaded.args[0].template == "gguf"  # its own ChatML template
        # Greedy, so the test is repeatable (seeded sampling differs from run to run), and
        # short: the answer comes first.
        window.settings.temperature, window.settings.max_tokens = 0.0, 40
        window.input.setPlainText("Name the capital of France.")
        with qtbot.waitSignal(window.replyFinished, timeout=120_000) as blocker:
            window.send()
        final = blocker.args[0]
        assert isinstance(final, DoneEvent), final
        print(f"\nfirst reply: {final.text!r}")
        assert "Paris" in final.text
        assert not banner.isVisible() and window.welcome is None  # gone after a message
    finally:
        launched.close()
