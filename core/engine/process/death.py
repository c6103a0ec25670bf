"""When the worker goes wrong: how it died, which error the parent re-raises, and the next
placement down the GPU → half → CPU fallback chain."""

from __future__ import annotations

import signal
from multiprocessing.process import BaseProcess

from core import errors
from core.engine.api import ErrorEvent
from core.errors import EngineError, HearthError


class WorkerDied(EngineError):
    """The worker process ended unexpectedly; ``reason`` says how ("killed by SIGKILL")."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def death_reason(process: BaseProcess) -> str:
    process.join(timeout=5)
    code = process.exitcode
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def fewer_layers(layers: int, n_layer: int) -> int:
    """Next step down the chain: all → half the model's layers → CPU."""
    if layers < 0 and n_layer > 1:
        return n_layer // 2
    if layers > 1 and n_layer and layers > n_layer // 2:
        return n_layer // 2
    return 0


def error_of_kind(kind: str, message: str) -> HearthError:
    """Re-create the worker's error class in the parent (by name, from core.errors)."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, HearthError):
        return cls(message)
    return EngineError(message)


def died_mid_stream(message: str, text: str) -> ErrorEvent:
    """The event a stream ends with when its worker went away: the partial reply is kept."""
    return ErrorEvent(f"{message} The reply so far is kept; the next request restarts the "
                      "engine.", "WorkerDied", text)


def stopped(reason: str, text: str) -> ErrorEvent:
    return died_mid_stream(f"The engine process stopped ({reason}).", text)


def not_loaded(err: HearthError) -> ErrorEvent:
    """A request that found no model (or could not reload one after a crash)."""
    kind = "EngineError" if str(err) == "No model is loaded." else type(err).__name__
    return ErrorEvent(str(err), kind)
