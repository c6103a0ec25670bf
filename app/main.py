"""``hearth``: the desktop app's entry point.

Start-up work that can take seconds (assembling the bundled model on first run, loading
it) happens off the GUI thread; the window shows at once with the status bar saying what
is going on. ``--smoke "text"`` sends one message once the model is loaded, prints the
reply to stdout and exits: the real-display test and the bundle's smoke test use it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hearth", description="Run LLMs on your own machine.")
    parser.add_argument("--model", type=Path, help="GGUF model to load at start")
    parser.add_argument("--smoke", metavar="TEXT",
                        help="send TEXT once loaded, print the reply, exit (for tests)")
    parser.add_argument("--max-tokens", type=int, help="reply length (with --smoke)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from PySide6.QtWidgets import QApplication

    from app.bridge import Background, EngineBridge
    from app.main_window import MainWindow
    from core.history import HistoryStore
    from core.settings import load_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Hearth")
    app.setOrganizationName("Hearth")
    settings = load_settings()
    if args.max_tokens:
        settings.max_tokens = args.max_tokens
    history = HistoryStore()
    bridge = EngineBridge()
    window = MainWindow(settings, history, bridge)
    window.show()
    startup = Background("startup", window)

    def resolve_model() -> Path:
        if args.model:
            return args.model
        last = Path(settings.last_model) if settings.last_model else None
        if last is not None and last.is_file():
            return last
        from core.defaults import default_model_path

        return default_model_path()

    window.model_label.setText("Preparing the model…")
    startup.run(resolve_model, window.load_model, lambda err: window.bridge.loadFailed.emit(
        str(err)))
    if args.smoke is not None:
        _smoke(app, window, args.smoke)
    code = app.exec()
    bridge.shutdown()
    startup.shutdown()
    history.close()
    return code


def _smoke(app, window, text: str) -> None:
    """Send ``text`` when the model is loaded; print the reply and quit when it ends."""
    from core.engine import DoneEvent

    def send(_loaded: object) -> None:
        window.input.setPlainText(text)
        window.send()

    def done(final: object) -> None:
        if isinstance(final, DoneEvent):
            print(final.text, flush=True)
            app.exit(0)
        else:
            print(f"hearth: {getattr(final, 'message', final)}", file=sys.stderr, flush=True)
            app.exit(1)

    window.modelLoaded.connect(send)
    window.replyFinished.connect(done)
    window.bridge.loadFailed.connect(lambda message: (print(message, file=sys.stderr),
                                                      app.exit(1)))


if __name__ == "__main__":
    os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")
    sys.exit(main())
