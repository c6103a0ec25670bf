"""Which loaded worker can serve a request, and when a reload is really needed.

A worker is keyed by what cannot change without loading the weights again: the file, the
GPU layers and the speculative draft. Everything else a request can ask for is either a
per-request setting (tokens, sampling) or a size the loaded context may already cover: a
request for a *shorter* context, or fewer parallel sequences, runs on the worker that has
more (Ollama reloads whenever ``num_ctx`` differs, ollama #12783; Hearth does not). Only a
larger context, more sequences, other weights or other load options load again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from core.engine.config import EngineConfig


@dataclass(frozen=True)
class PoolKey:
    """One resident worker's identity (hashable)."""

    path: str
    n_gpu_layers: int
    draft: str | None
    draft_model_path: str | None
    draft_max: int

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def resolved_path(path: Path) -> str:
    """One spelling per file, so a link and its target share one worker."""
    return str(Path(path).expanduser().resolve())


def key_of(config: EngineConfig) -> PoolKey:
    """The key of a config whose ``model_path`` is set (the pool fills it in first)."""
    if config.model_path is None:
        raise ValueError("key_of needs a config with model_path set")
    draft_path = (resolved_path(config.draft_model_path)
                  if config.draft == "model" and config.draft_model_path else None)
    return PoolKey(
        path=resolved_path(config.model_path),
        n_gpu_layers=config.n_gpu_layers,
        draft=config.draft,
        draft_model_path=draft_path,
        draft_max=config.draft_max if config.draft else 0,
    )


def covers(loaded: EngineConfig, wanted: EngineConfig) -> bool:
    """Whether a worker loaded with ``loaded`` can serve ``wanted`` (same key assumed):
    its context and parallel sequences are at least what is asked."""
    return wanted.n_ctx <= loaded.n_ctx and wanted.n_seq_max <= loaded.n_seq_max


def merged(loaded: EngineConfig, wanted: EngineConfig) -> EngineConfig:
    """What a reload for ``wanted`` loads: its options, with the larger of both sizes, so a
    reload never shrinks what the requests already served still need."""
    return replace(wanted, n_ctx=max(loaded.n_ctx, wanted.n_ctx),
                   n_seq_max=max(loaded.n_seq_max, wanted.n_seq_max))
