"""How to load a model: plain data, shared by every backend and front end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class EngineConfig:
    """How to load a model. ``model_path=None`` means the bundled default model;
    ``n_threads=None`` means one per physical core; ``n_gpu_layers=-1`` means all layers."""

    model_path: Path | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = -1
    warmup: bool = True
    validate: bool = True  # run core.gguf.validate on the file first (off only in tests)
    # Speculative decoding (core.engine.speculative): "model" drafts with draft_model_path,
    # "twin" with the target's own Q4_K_M twin (made and cached on first use), "lookup" with
    # n-grams of the prompt and output; draft_max bounds the guesses per round.
    draft: Literal["model", "twin", "lookup"] | None = None
    draft_model_path: Path | None = None
    draft_max: int = 16
    # Requests decoded together (sequences over one unified KV cache of n_ctx cells) and
    # how many may wait for one; 1 = one request at a time, as a lone chat needs.
    n_seq_max: int = 1
    queue_limit: int = 64
