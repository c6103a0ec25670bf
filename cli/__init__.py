"""``hearth-cli``: the headless face of the core.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered, so adding a command never edits this file.
A command's handler returns the exit code. Errors derived from :class:`HearthError` become
one line on stderr and exit code 1; argument errors exit with 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.errors import HearthError
from core.log import configure as configure_log

log = logging.getLogger("hearth.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gets one line (and a pointer to --help), not the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every sub-command module of this package registered."""
    parser = _Parser(
        prog="hearth-cli", description="Run LLMs on your own machine (Hearth's command line)."
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="echo Hearth's log (llama.cpp's lines included) to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hearth-cli`` console script."""
    if argv is None:  # a process of its own (tests call main in-process with argv)
        _make_interruptible()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_log(verbose=args.verbose)
    log.info("hearth-cli %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except HearthError as err:
        log.error("%s", err)
        print(f"hearth-cli: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hearth-cli: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _make_interruptible() -> None:
    """Ctrl-C (and the app's Cancel, which sends SIGINT) must stop a reply or a benchmark
    whatever the parent left us: a process inherits an ignored SIGINT (a background job of
    a non-interactive shell) and a blocked one (started from a thread that had it masked),
    and then the signal never arrives."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
