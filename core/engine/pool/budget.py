"""How much memory the pool may fill, and what each model costs in it.

A model's cost is the planner's prediction (:func:`core.planning.memory_model.predict`) for
the way it is loaded: its weights, the unified KV cache of ``n_ctx`` cells that its
``n_seq_max`` parallel sequences share, the compute buffers, and the draft model when it
speculates with one. The budget is either explicit (bytes: tests and the user's settings)
or, by default, the planner's budget from *free* memory at the moment a load is decided
(never the total: other programs' memory counts, ollama #3765), plus what the pool's own
workers hold then, since free memory already has them taken out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from core.engine.config import EngineConfig
from core.gguf.info import ModelInfo
from core.planning.hardware import format_size

log = logging.getLogger("hearth.pool")


@dataclass(frozen=True)
class Cost:
    """Bytes of host RAM and of GPU memory."""

    host_bytes: int = 0
    vram_bytes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.host_bytes + other.host_bytes, self.vram_bytes + other.vram_bytes)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.host_bytes - other.host_bytes, self.vram_bytes - other.vram_bytes)

    def __str__(self) -> str:
        text = f"{format_size(self.host_bytes)} RAM"
        return text + (f" + {format_size(self.vram_bytes)} VRAM" if self.vram_bytes else "")


@dataclass(frozen=True)
class MemoryBudget:
    """What the pool may fill. ``vram_bytes`` 0 means no GPU: models are costed on the CPU."""

    host_bytes: int
    vram_bytes: int = 0
    source: str = "explicit"

    @property
    def gpu(self) -> bool:
        return self.vram_bytes > 0

    def fits(self, cost: Cost) -> bool:
        return cost.host_bytes <= self.host_bytes and cost.vram_bytes <= self.vram_bytes

    def __str__(self) -> str:
        return f"{Cost(self.host_bytes, self.vram_bytes)} ({self.source})"


BudgetSource = Callable[[Cost], MemoryBudget]  # what the pool's workers hold -> budget


def explicit(budget: MemoryBudget) -> BudgetSource:
    return lambda _held: budget


class FreeMemoryBudget:
    """The planner's budget now: free RAM × 0.85 and free VRAM less 10 % of the card
    (:func:`core.planning.planner.budgets`), plus what the pool's workers hold. NVML is
    probed each time (a load decision, not a request); llama.cpp is not loaded in this
    process for it: a GPU that NVML lists is taken as usable, and a load that fails on it
    falls back to the CPU in the worker, as every load does."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self.nvml = nvml

    def __call__(self, held: Cost) -> MemoryBudget:
        from core.planning.hardware import probe
        from core.planning.planner import PlanSettings, budgets

        hw = probe(nvml=self.nvml, llama_probe=None)
        hw = replace(hw, gpu_offload_supported=bool(hw.gpus))
        vram, ram, _notes = budgets(hw, PlanSettings())
        return MemoryBudget(ram + held.host_bytes, (vram + held.vram_bytes) if vram else 0,
                            "free memory now")


def _info(path: Path) -> ModelInfo:
    from core.gguf.reader import read_local

    return read_local(path)


def _draft_info(config: EngineConfig) -> ModelInfo | None:
    """The draft's header: the draft file, or the target's quantized twin (the target
    itself stands in before the twin is made: an overestimate, never an underestimate)."""
    if config.draft == "model" and config.draft_model_path is not None:
        return _info(config.draft_model_path)
    if config.draft == "twin" and config.model_path is not None:
        from core.engine.speculative.twin import twin_path

        twin = twin_path(config.model_path)
        return _info(twin if twin.is_file() else config.model_path)
    return None


def predict_cost(config: EngineConfig, gpu: bool, gpu_layers: int | None = None) -> Cost:
    """The planner's prediction for ``config``: CPU only unless ``gpu``; ``gpu_layers``
    (what a load actually placed) overrides the requested layers once known."""
    from core.planning.memory_model import LoadConfig, predict

    assert config.model_path is not None
    layers = (config.n_gpu_layers if gpu_layers is None else gpu_layers) if gpu else 0
    cfg = LoadConfig(n_ctx=config.n_ctx, n_gpu_layers=layers, n_batch=config.n_batch,
                     n_ubatch=config.n_ubatch, n_seq_max=config.n_seq_max)
    est = predict(_info(config.model_path), cfg, draft=_draft_info(config),
                  gpu_present=gpu and layers != 0)
    return Cost(est.host_bytes, est.vram_bytes)
