"""Messages between the engine client (parent) and the worker process.

Commands go down the pipe; answers come back as ``(request_id, event)`` pairs, where the
event is one of the engine's own events (``TextEvent``, ``DoneEvent``, ``ErrorEvent``) or one
of the worker-only events below. Everything is a plain picklable dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.engine.api import GenerationRequest
from core.engine.config import EngineConfig


@dataclass(frozen=True)
class LoadCommand:
    config: EngineConfig


@dataclass(frozen=True)
class GenerateCommand:
    request_id: int
    request: GenerationRequest


@dataclass(frozen=True)
class CancelCommand:
    request_id: int


@dataclass(frozen=True)
class UnloadCommand:
    pass


@dataclass(frozen=True)
class ShutdownCommand:
    pass


Command = LoadCommand | GenerateCommand | CancelCommand | UnloadCommand | ShutdownCommand


@dataclass
class LoadFailedEvent:
    """A load attempt failed. ``gpu_related`` says a retry with fewer GPU layers may work."""

    message: str
    kind: str
    gpu_related: bool
    n_layer: int = 0


@dataclass
class UnloadedEvent:
    pass
