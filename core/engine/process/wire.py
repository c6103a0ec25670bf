"""Messages between the engine client (parent) and the worker process.

Commands go down the pipe one at a time. Answers come back in batches: each message is a
list of ``(request_id, event)`` pairs gathered over one scheduler step or a few
milliseconds, so eight streams cost one pipe write and one wake-up of the parent per step
rather than eight. An event is one of the engine's own (``TextEvent``, ``DoneEvent``,
``ErrorEvent``) or one of the worker-only events below; request id 0 carries the answers to
load and unload. Everything is a plain picklable dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.engine.api import GenerationRequest
from core.engine.config import EngineConfig

WhenBusy = Literal["wait", "cancel"]


@dataclass(frozen=True)
class LoadCommand:
    """Load a model, replacing any loaded one. ``when_busy``: let running requests finish
    first ("wait") or cancel them ("cancel")."""

    config: EngineConfig
    when_busy: WhenBusy = "wait"


@dataclass(frozen=True)
class GenerateCommand:
    request_id: int
    request: GenerationRequest


@dataclass(frozen=True)
class CancelCommand:
    request_id: int


@dataclass(frozen=True)
class EmbedCommand:
    """Embed ``texts`` with the loaded model's weights (or ``model_path``'s)."""

    request_id: int
    texts: list[str]
    model_path: str | None = None
    pooling: str | None = None


@dataclass(frozen=True)
class UnloadCommand:
    when_busy: WhenBusy = "wait"


@dataclass(frozen=True)
class ShutdownCommand:
    pass


Command = (LoadCommand | GenerateCommand | CancelCommand | EmbedCommand | UnloadCommand
           | ShutdownCommand)


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


@dataclass
class EmbeddingsEvent:
    """The answer to an EmbedCommand: one L2-normalized float32 row per text."""

    vectors: Any  # numpy.ndarray (n, dim)
    model: str


@dataclass
class StatusEvent:
    """Sent with every batch: how busy the worker is (requests decoding or prefilling,
    requests waiting for a sequence or KV room)."""

    running: int
    waiting: int


