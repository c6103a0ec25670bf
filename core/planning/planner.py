"""Choose the quant, GPU offload and context that fit this machine, and say why.

For each candidate file the planner tries, in order: every layer on the GPU, then the most
layers that fit (partial offload), then the CPU alone; within each it keeps the requested
context if it fits and otherwise halves it, never below the user's floor. Budgets come from
*free* memory minus headroom: a GPU is kept at or below ``max_vram_utilisation`` of its total
(the seed's 80–90 %), so VRAM another program holds is already excluded; RAM is budgeted from
*available* memory times ``max_ram_utilisation``. The draft model, when given, is inside the
budget (lmstudio-bug-tracker #556). Candidates are ranked by bits per weight; the choice is
the best quality that fits fully on the GPU, else the best that fits with partial offload
(with at least ``min_gpu_share`` of the layers on the GPU when any does), else the best that
fits on the CPU; at each step a file that keeps the requested context beats a better quant
that only fits with a shorter one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.gguf.info import FTYPE_NAMES, ModelInfo, TensorInfo, model_info_from_metadata
from core.planning.hardware import HardwareProfile, format_size
from core.planning.memory_model import LoadConfig, MemoryEstimate, predict


class Fit(StrEnum):
    GPU = "fits on GPU"
    PARTIAL = "partial offload"
    CPU = "CPU only"
    TOO_LARGE = "too large"


@dataclass(frozen=True)
class PlanSettings:
    """What the user asked for and how much headroom to keep."""

    n_ctx: int | None = None  # None: min(8192, the model's training context)
    ctx_floor: int = 2048
    max_vram_utilisation: float = 0.90
    max_ram_utilisation: float = 0.85
    type_k: str = "F16"
    type_v: str = "F16"
    n_ubatch: int = 512
    # A partial offload is preferred only if at least this share of layers is on the GPU;
    # below it a smaller quant with more layers on the GPU is usually much faster.
    min_gpu_share: float = 0.5
    n_seq_max: int = 1  # sequences decoded together (a profile's parallel width)


@dataclass
class FilePlan:
    """The verdict for one file: how it would run and what it would use."""

    label: str
    info: ModelInfo
    fit: Fit
    n_gpu_layers: int
    n_ctx: int
    estimate: MemoryEstimate | None
    reason: str

    @property
    def bits_per_weight(self) -> float:
        return self.info.bits_per_weight

    @property
    def status(self) -> str:
        if self.fit is Fit.PARTIAL:
            head = ", head on CPU" if self.n_gpu_layers >= self.info.n_layer else ""
            return f"partial offload ({self.n_gpu_layers} of {self.info.n_layer} layers{head})"
        return self.fit.value

    def to_dict(self) -> dict:
        est = self.estimate
        return {
            "file": self.label, "file_type": self.info.file_type_name,
            "bits_per_weight": round(self.bits_per_weight, 3), "file_size": self.info.file_size,
            "status": self.status, "fit": self.fit.name, "n_gpu_layers": self.n_gpu_layers,
            "n_ctx": self.n_ctx, "reason": self.reason,
            "host_bytes": est.host_bytes if est else None,
            "vram_bytes": est.vram_bytes if est else None,
            "parts": {k: list(v) for k, v in est.parts.items()} if est else None,
        }


@dataclass
class Plan:
    """All candidates, best quality first, and the one chosen (None: nothing fits)."""

    files: list[FilePlan]
    chosen: FilePlan | None
    vram_budget: int
    ram_budget: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "chosen": self.chosen.label if self.chosen else None,
            "vram_budget": self.vram_budget, "ram_budget": self.ram_budget,
            "notes": self.notes, "files": [f.to_dict() for f in self.files],
        }


def budgets(hw: HardwareProfile, settings: PlanSettings) -> tuple[int, int, list[str]]:
    """(VRAM budget, RAM budget, notes) from free memory and the utilisation caps."""
    notes: list[str] = []
    gpu = hw.best_gpu
    vram = 0
    if gpu is not None and (hw.gpu_offload_supported or hw.source != "probe"):
        # Keep the whole GPU at or below the cap: what others use is already gone.
        vram = int(gpu.free_bytes - (1 - settings.max_vram_utilisation) * gpu.total_bytes)
        vram = max(0, vram)
        if gpu.total_bytes - gpu.free_bytes > 0.05 * gpu.total_bytes:
            notes.append(f"{gpu.name}: {format_size(gpu.total_bytes - gpu.free_bytes)} already "
                         f"in use by other programs; budgeting from the free "
                         f"{format_size(gpu.free_bytes)}.")
    elif gpu is not None:
        notes.append("A GPU is present but this llama.cpp build cannot offload to it.")
    ram = int(hw.ram_available_bytes * settings.max_ram_utilisation)
    return vram, ram, notes


def _contexts(info: ModelInfo, settings: PlanSettings) -> list[int]:
    top = settings.n_ctx or min(8192, info.n_ctx_train or 4096)
    if info.n_ctx_train:
        top = min(top, info.n_ctx_train)
    floor = min(settings.ctx_floor, top)
    out, n = [], top
    while n >= floor:
        out.append(n)
        n //= 2
    if out[-1] != floor:
        out.append(floor)
    return out


def _cfg(settings: PlanSettings, n_ctx: int, n_gpu: int) -> LoadConfig:
    return LoadConfig(n_ctx=n_ctx, n_gpu_layers=n_gpu, type_k=settings.type_k,
                      type_v=settings.type_v, n_ubatch=settings.n_ubatch,
                      n_seq_max=settings.n_seq_max)


def plan_file(label: str, info: ModelInfo, vram: int, ram: int, settings: PlanSettings,
              draft: ModelInfo | None = None) -> FilePlan:
    """The best way to run one file within the budgets."""
    ctxs = _contexts(info, settings)
    wanted = ctxs[0]

    def fits(est: MemoryEstimate) -> bool:
        return est.vram_bytes <= vram and est.host_bytes <= ram

    def why_ctx(n_ctx: int) -> str:
        return "" if n_ctx == wanted else f"; context reduced from {wanted} to {n_ctx}"

    if vram > 0:
        for n_ctx in ctxs:
            est = predict(info, _cfg(settings, n_ctx, -1), draft)
            if fits(est):
                return FilePlan(label, info, Fit.GPU, info.n_layer + 1, n_ctx, est,
                                f"all {info.n_layer} layers use {format_size(est.vram_bytes)}"
                                f" of the {format_size(vram)} VRAM budget{why_ctx(n_ctx)}")
        for n_ctx in ctxs:
            lo, hi, best = 1, info.n_layer, None
            while lo <= hi:  # most layers that fit: VRAM grows with every layer
                mid = (lo + hi) // 2
                est = predict(info, _cfg(settings, n_ctx, mid), draft)
                if est.vram_bytes <= vram:
                    best, lo = (mid, est), mid + 1
                else:
                    hi = mid - 1
            if best and best[1].host_bytes <= ram:
                n, est = best
                return FilePlan(label, info, Fit.PARTIAL, n, n_ctx, est,
                                f"{n} of {info.n_layer} layers fit in the "
                                f"{format_size(vram)} VRAM budget; the rest run on the CPU"
                                f"{why_ctx(n_ctx)}")
    for n_ctx in ctxs:
        est = predict(info, _cfg(settings, n_ctx, 0), draft, gpu_present=False)
        if est.host_bytes <= ram:
            where = "no usable GPU" if vram <= 0 else "not even one layer fits the GPU budget"
            return FilePlan(label, info, Fit.CPU, 0, n_ctx, est,
                            f"{where}; needs {format_size(est.host_bytes)} of the "
                            f"{format_size(ram)} RAM budget{why_ctx(n_ctx)}")
    est = predict(info, _cfg(settings, ctxs[-1], 0), draft, gpu_present=False)
    return FilePlan(label, info, Fit.TOO_LARGE, 0, ctxs[-1], est,
                    f"needs {format_size(est.host_bytes)} even at context {ctxs[-1]}; the RAM "
                    f"budget is {format_size(ram)} and the VRAM budget {format_size(vram)}")


def choose(files: list[FilePlan], settings: PlanSettings) -> FilePlan | None:
    """Full GPU, else partial offload, else CPU; within a mode the largest context first
    (the user's context beats a higher quant), then the highest quality."""
    def key(f: FilePlan) -> tuple[int, float]:
        return (f.n_ctx, f.bits_per_weight)

    for mode in (Fit.GPU, Fit.PARTIAL, Fit.CPU):
        group = [f for f in files if f.fit is mode]
        if mode is Fit.PARTIAL:
            enough = [f for f in group
                      if f.n_gpu_layers >= settings.min_gpu_share * f.info.n_layer]
            group = enough or group
        if group:
            return max(group, key=key)
    return None


def plan(candidates: list[tuple[str, ModelInfo]], hw: HardwareProfile,
         settings: PlanSettings | None = None, draft: ModelInfo | None = None) -> Plan:
    """Rank ``(label, info)`` candidates by quality and choose the best that fits."""
    settings = settings or PlanSettings()
    vram, ram, notes = budgets(hw, settings)
    notes = list(hw.notes) + notes
    ranked = sorted(candidates, key=lambda c: c[1].bits_per_weight, reverse=True)
    files = [plan_file(label, info, vram, ram, settings, draft) for label, info in ranked]
    chosen = choose(files, settings)
    if draft is not None:
        notes.append(f"Includes the draft model ({draft.name or draft.source}) and its KV cache.")
    return Plan(files=files, chosen=chosen, vram_budget=vram, ram_budget=ram, notes=notes)


def synthesize(meta: dict[str, Any], file_size: int, file_type: int | None,
               source: str) -> ModelInfo:
    """A :class:`ModelInfo` for a file known only by its listing (size + architecture).

    Used when headers cannot be read (planning offline from a saved repo listing, tests over
    published file tables). Tensors get their real shapes from the architecture; their bytes
    are the file size spread pro rata to parameters, so layer sizes are estimates — the one
    place the planner falls back to file size, and :attr:`ModelInfo.metadata` says so.
    """
    info = model_info_from_metadata(meta, [], file_size, source)
    e, kv, ff, n_q = info.n_embd, info.n_head_kv, info.n_ff, info.n_head * info.n_embd_head_k
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (e, info.vocab_size)),
                                                 ("output.weight", (e, info.vocab_size))]
    for il in range(info.n_layer):
        k = info.n_embd_head_k * kv[il]
        shapes += [(f"blk.{il}.attn_q.weight", (e, n_q)), (f"blk.{il}.attn_k.weight", (e, k)),
                   (f"blk.{il}.attn_v.weight", (e, k)), (f"blk.{il}.attn_output.weight", (n_q, e)),
                   (f"blk.{il}.ffn_gate.weight", (e, ff)), (f"blk.{il}.ffn_up.weight", (e, ff)),
                   (f"blk.{il}.ffn_down.weight", (ff, e))]
    n_total = sum(a * b for _, (a, b) in shapes)
    per_param = file_size / n_total
    name = FTYPE_NAMES.get(file_type, "Q8_0") if file_type is not None else "Q8_0"
    ttype = name.split("_")[0] + ("_K" if "_K" in name else ("_0" if name[0] == "Q" else ""))
    info.tensors = [TensorInfo(n, ttype, s, int(s[0] * s[1] * per_param)) for n, s in shapes]
    info.file_type = file_type
    info.metadata["_synthesized"] = True
    return info
