"""Messages between the engine client (parent) and the worker process.

Commands go down the pipe; answers come back as ``(request_id, event)`` pairs, where the
event is one of the engine's own events (``TextEvent``, ``DoneEvent``, ``ErrorEvent``) or one
of the worker-only events below. Everything is a plain picklable dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.engine.protocol import GenerationRequest
from core.engine.session import EngineConfig


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
class LoadedEvent:
    """A model is loaded; says what was placed where, and why if not where asked."""

    model_name: str
    path: str
    architecture: str
    n_layer: int
    n_params: int
    size_bytes: int
    n_ctx: int
    n_threads: int
    template: str
    gpu_layers_requested: int
    gpu_layers: int
    device: str
    load_ms: float
    notes: list[str] = field(default_factory=list)
    worker_pid: int = 0

    @property
    def placement(self) -> str:
        """Where the model runs, in a few words ("GPU 18/18 layers", "CPU")."""
        if self.gpu_layers == 0:
            return "CPU"
        return f"{self.device} {min(self.gpu_layers, self.n_layer)}/{self.n_layer} layers"

    @property
    def fell_back(self) -> bool:
        """True when a GPU placement was tried and failed (the user should be told)."""
        return any("failed" in note for note in self.notes)

    @property
    def message(self) -> str:
        """What the user is told: where it runs, after what happened on the way."""
        return "; ".join([*self.notes, f"running on {self.placement}"])

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"event": "loaded", **asdict(self), "message": self.message}


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
