"""``hearth``: the desktop app's entry point.

Start-up work that can take seconds (assembling the bundled model on first run, loading
it, scanning the library) happens off the GUI thread; the window shows at once with the
status bar saying what is going on, and a welcome on the very first run. A second launch
hands over to the running instance (its window comes forward) and exits.

Flags for people: ``--model PATH``, ``--install-desktop-entry``, ``--uninstall-desktop-entry``.
Flags for tests and benchmarks: ``--smoke TEXT`` sends one message once the model is
loaded, prints the reply and exits (a self-contained run: no single-instance hand-off);
``--no-model`` starts without loading one; ``--exit-when-shown`` quits once the window is
painted; ``--timings`` prints one JSON line per start-up milestone (``bench/cold_start.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.display import no_display_reason, prefer_socket_uploads
from app.wording import plural

if TYPE_CHECKING:
    from core.engine.process.client import EngineClient

LIBRARY_SCAN_DELAY_MS = 1500
log = logging.getLogger("hearth.app")


DESKTOP_KEEP_ALIVE_S = 30 * 60  # an idle model's memory goes back after half an hour


def local_engine() -> EngineClient:
    """One engine worker process on this machine, niced below the window (on a machine
    whose cores it fills, the GUI thread still gets a core the moment it wakes; the cost:
    other busy programs slow the engine more than they would at equal priority). The pool
    makes its workers with it; tests drive a window over one directly."""
    from core.engine.process.client import EngineClient
    from core.engine.process.worker import WorkerOptions

    return EngineClient(WorkerOptions(nice=5))

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hearth", description="Run LLMs on your own machine.")
    parser.add_argument("--model", type=Path, help="GGUF model to load at start")
    entry = parser.add_mutually_exclusive_group()
    entry.add_argument("--install-desktop-entry", action="store_true",
                       help="add Hearth to the desktop's application menu, then exit")
    entry.add_argument("--uninstall-desktop-entry", action="store_true",
                       help="remove Hearth from the application menu, then exit")
    parser.add_argument("--smoke", metavar="TEXT",
                        help="send TEXT once loaded, print the reply, exit (for tests)")
    parser.add_argument("--max-tokens", type=int, help="reply length (with --smoke)")
    parser.add_argument("--no-model", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timings", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _milestone(enabled: bool, event: str, **extra: object) -> None:
    """One JSON line on stdout (wall clock, comparable with the launching process)."""
    if enabled:
        print(json.dumps({"event": event, "t": time.time(), **extra}), flush=True)


def _desktop_entry(args: argparse.Namespace) -> int:
    from app.desktop_entry import DesktopEntry
    from core.errors import HearthError

    entry = DesktopEntry.default()
    try:
        if args.install_desktop_entry:
            print(f"Installed {entry.install()}; Hearth is now in the application menu.")
        else:
            removed = entry.uninstall()
            print(f"Removed {len(removed)} file(s); Hearth is no longer in the menu.")
    except HearthError as err:
        print(f"hearth: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()  # in a bundle, the engine worker re-enters here
    args = parse_args(argv)
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return _desktop_entry(args)
    from core.log import configure

    configure()
    reason = no_display_reason()
    if reason is not None:
        log.error("no display: %s", reason)
        print(f"hearth: {reason}; without a screen, chat in the terminal with 'hearth-cli "
              "chat' or serve the API with 'hearth-cli serve'.", file=sys.stderr)
        return 2
    prefer_socket_uploads()
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.desktop_entry import ICON_SIZES, icon_png
    from app.single_instance import SingleInstance

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Hearth")
    app.setOrganizationName("Hearth")
    app.setDesktopFileName("hearth")
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(icon_png(size)))
    app.setWindowIcon(icon)
    instance = None
    if args.smoke is None:
        instance = SingleInstance()
        request = {"action": "raise", "model": str(args.model.resolve()) if args.model else None}
        handed = instance.hand_over(request)
        if not handed and not instance.claim():  # a launch at the same moment won the race
            handed = instance.hand_over(request) or True
        if handed:
            print("hearth: Hearth is already running; its window was brought forward.",
                  file=sys.stderr)
            return 0
    return _run(app, args, instance)


class Launched:
    """The running app's parts (the window and what it owns); :meth:`close` ends them."""

    def __init__(self, window, bridge, history, startup, progress, scan_timer,
                 pool=None) -> None:
        self.window, self.bridge, self.history = window, bridge, history
        self.startup, self.progress, self.scan_timer = startup, progress, scan_timer
        self.pool = pool

    def close(self) -> None:
        self.scan_timer.stop()
        self.window.close()
        self.bridge.shutdown()
        if self.pool is not None:
            self.pool.close()
        self.startup.shutdown()
        self.history.close()


def _run(app, args: argparse.Namespace, instance) -> int:
    launched = launch(app, args)
    _report_uncaught(launched.window)
    if instance is not None:
        instance.activationRequested.connect(
            lambda request: _activate(launched.window, request))
    if args.smoke is not None:
        _smoke(app, launched.window, args.smoke)
    code = app.exec()
    if instance is not None:
        instance.close()
    launched.close()
    return code


def _report_uncaught(window) -> None:
    """An exception escaping a slot is a bug: log it with its traceback and tell the user
    in the status bar rather than only on a console nobody sees."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        log.critical("uncaught exception", exc_info=(kind, value, tb))
        try:
            window.report_error(f"Something went wrong inside Hearth ({kind.__name__}: "
                                f"{value}); details are in the log (Help › Open log folder).")
        except Exception:  # the window may be gone: the log has it
            previous(kind, value, tb)

    sys.excepthook = hook


def engine_pool():
    """The app's engine: a pool of workers (several models at once, under the planner's
    budget from free memory), its workers made by :func:`local_engine`. A model the user
    switched away from stays resident for a quick switch back, and goes after
    ``DESKTOP_KEEP_ALIVE_S`` idle (or sooner, when another needs its memory)."""
    from core.engine.pool import EnginePool

    return EnginePool(keep_alive_s=DESKTOP_KEEP_ALIVE_S, worker_factory=local_engine)


def launch(app, args: argparse.Namespace) -> Launched:
    """Build and show the window, then start the start-up work off the GUI thread.

    The window drives a view of the engine pool (:func:`engine_pool`). Returns at once
    (the model loads in the background); tests call this and wait on
    ``launched.window.modelLoaded`` instead of running ``app.exec()``."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    from app.bridge import Background, EngineBridge
    from app.first_run import StartupProgress, is_first_run, show_welcome
    from app.main_window import MainWindow
    from core.chat.history import HistoryStore
    from core.settings import load_settings

    settings_problems: list[str] = []
    settings = load_settings(problems=settings_problems)
    if args.max_tokens:
        settings.max_tokens = args.max_tokens
    history = HistoryStore()
    pool = engine_pool()
    bridge = EngineBridge(pool.backend_for())
    window = MainWindow(settings, history, bridge)
    from app.loaded_models import PoolControls

    window.pool_controls = PoolControls(window, pool)
    progress = StartupProgress(window)
    startup = Background("startup", window, report=window.report_error)

    class FirstPaint(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                window.removeEventFilter(self)
                _milestone(args.timings, "window_shown")
                if args.exit_when_shown:
                    print("hearth: window shown", flush=True)
                    QTimer.singleShot(0, app.quit)
            return super().eventFilter(obj, event)

    window.installEventFilter(FirstPaint(window))
    window.welcome = show_welcome(window) if is_first_run() else None
    window.show()

    def resolve_model() -> Path:
        """The model to open with: asked for, else the last one, else the bundled chat
        model (an instruct model that answers), else Gemma if that package is missing."""
        if args.model:
            return args.model
        last = Path(settings.last_model) if settings.last_model else None
        if last is not None and last.is_file():
            return last
        from core.errors import ModelFileError
        from core.models.bundled import default_model_path
        from core.models.chat_model import chat_model_path

        try:
            return chat_model_path()
        except ModelFileError as err:  # said to the user once the fallback is chosen
            fallback_notes.append(f"{err} Using the base model Gemma 3 270M meanwhile.")
            return default_model_path()

    fallback_notes: list[str] = []

    def resolved(path: Path) -> None:
        _milestone(args.timings, "model_ready")
        for note in fallback_notes:
            window.report_error(note)
        progress.loading(path.name)
        window.load_model(path)

    def scan_library() -> int:
        from core.models.library import Library

        return len(Library().models())

    scan_timer = QTimer(window)
    scan_timer.setSingleShot(True)
    scan_timer.setInterval(LIBRARY_SCAN_DELAY_MS)
    scanned = [False]

    def scan_when_idle() -> None:
        """The scan reads GGUF headers (about a second of CPU): never during a reply."""
        if scanned[0]:
            return
        if bridge.busy:
            scan_timer.start()
            return
        scanned[0] = True
        startup.run(scan_library, lambda n: window.statusBar().showMessage(
            f"Ready. {plural(n, 'model')} in your library: File › Models… (Ctrl+M) to "
            "switch.", 8000))

    def startup_done(text: str) -> None:
        """Start-up's last status line, then what was wrong with the settings file (shown
        after it, so the progress messages do not cover it)."""
        progress.done(text)
        while settings_problems:
            window.report_error(settings_problems.pop(0))

    def loaded(event: object) -> None:
        _milestone(args.timings, "model_loaded")
        startup_done(f"Ready: {getattr(event, 'model_name', 'model loaded')}.")
        scan_timer.start()

    scan_timer.timeout.connect(scan_when_idle)
    window.modelLoaded.connect(loaded)
    bridge.loadFailed.connect(lambda _message: startup_done("The model did not load."))
    if args.no_model or args.exit_when_shown:
        startup_done("No model loaded.")
    else:
        window.model_label.setText("Preparing the model…")
        progress.preparing(*_preparing(args, settings))
        startup.run(resolve_model, resolved, lambda err: bridge.loadFailed.emit(str(err)))
    if args.timings:
        first = [True]

        def token(_text: str) -> None:
            if first[0]:
                first[0] = False
                _milestone(True, "first_token")

        bridge.textReady.connect(token)
    return Launched(window, bridge, history, startup, progress, scan_timer, pool)


def _preparing(args: argparse.Namespace, settings) -> tuple[str, int | None]:
    """What start-up may unpack (for the progress bar): the chat model on a first launch."""
    from core.models.chat_model import CHAT_MODEL_LABEL, CHAT_MODEL_SIZE

    if args.model or (settings.last_model and Path(settings.last_model).is_file()):
        return "the model", None
    return CHAT_MODEL_LABEL, CHAT_MODEL_SIZE


def _activate(window, request: dict) -> None:
    """Another launch asked for this window: bring it forward (and load its model)."""
    print("hearth: another launch asked for this window", file=sys.stderr, flush=True)
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()
    model = request.get("model")
    if model and not window.bridge.busy:
        window.load_model(Path(model))


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
