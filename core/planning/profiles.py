"""Profiles: the seed's selection matrix as settings, and the plan each one gives here.

The seed ends on four use cases (model size, quantization, batch, hardware, latency,
quality): real-time chat (7B, INT4, batch 1–2, GPU, 100 ms, 95 %), bulk processing (13B,
INT8, batch 16, GPU, 8 s, 98 %), cost-sensitive (3B, INT4, batch 4, CPU, 2 s, 90 %) and high
quality (70B, FP16, batch 2, multi-GPU, 500 ms, 99 %+). A :class:`Profile` keeps those
columns — precision preference, parallel sequences, placement, speculation, context per
sequence, sampling preset, and the latency and quality targets — and users can add their
own (stored in the settings). :func:`plan_profile` turns one into a concrete plan for this
machine from the models in the library: which file, how many GPU layers, what context, how
many sequences, with the reasons.

Measured figures win over predictions: when the benchmark has measured a candidate here
(:mod:`core.planning.measured`), its quality (share of next tokens that agree with the
highest-precision variant, the seed's "quality" column made measurable) is checked against
the profile's target and its measured speed, energy or KL decides; files without
measurements are ranked by precision preference and predicted fit, as the planner does.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError
from core.gguf.info import ModelInfo
from core.planning.hardware import HardwareProfile
from core.planning.measured import Measurement
from core.planning.planner import FilePlan, Fit, Plan, PlanSettings, plan

Placement = Literal["gpu", "cpu", "multi-gpu"]
Speculation = Literal["none", "lookup", "twin", "auto"]
ModelSize = Literal["small", "large"]

PRECISIONS = {"INT4": 4, "INT8": 8, "FP16": 16, "FP32": 32}
# Nominal bits of each llama.cpp file type: the precision class a file belongs to.
FILE_TYPE_BITS = {"F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8, "Q6_K": 6, "Q5_K_M": 5,
                  "Q5_K_S": 5, "Q5_0": 5, "Q5_1": 5, "Q4_K_M": 4, "Q4_K_S": 4, "Q4_0": 4,
                  "Q4_1": 4, "IQ4_NL": 4, "IQ4_XS": 4, "Q3_K_L": 3, "Q3_K_M": 3,
                  "Q3_K_S": 3, "Q2_K": 2}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_FIT_RANK = {Fit.GPU: 0, Fit.PARTIAL: 1, Fit.CPU: 2, Fit.TOO_LARGE: 3}


@dataclass(frozen=True)
class Profile:
    """One row of the selection matrix. ``n_ctx`` is per sequence; ``precision`` is a key
    of :data:`PRECISIONS`; ``sampling`` a decoding preset name (core.engine.sampling)."""

    name: str
    title: str
    precision: str
    parallel: int
    placement: Placement
    speculation: Speculation
    n_ctx: int
    sampling: str
    temperature: float
    latency_target_ms: float  # the seed's latency column (time to the first token)
    quality_target_pct: float  # next tokens agreeing with the highest precision, at least
    model_size: ModelSize = "large"
    quality_first: bool = False  # precision before placement when both cannot be had
    description: str = ""
    builtin: bool = False

    @property
    def bits(self) -> int:
        return PRECISIONS[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """A user profile from settings; a bad field is one clear :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError("A profile must be a JSON object of its fields.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown profile field(s): {', '.join(unknown)}.")
        base = BUILTINS["real-time-chat"].to_dict() | {"builtin": False, "description": ""}
        try:
            profile = cls(**(base | data))
        except TypeError as err:
            raise ConfigError(f"Invalid profile: {err}.") from None
        profile.validate()
        return profile

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"Profile name {self.name!r} must be lower-case letters, digits "
                              f"and dashes (at most 40), e.g. 'my-chat'.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"Profile {self.name}: precision must be one of "
                              f"{', '.join(PRECISIONS)}, not {self.precision!r}.")
        if not 1 <= int(self.parallel) <= 64:
            raise ConfigError(f"Profile {self.name}: parallel sequences must be 1 to 64.")
        if self.placement not in ("gpu", "cpu", "multi-gpu"):
            raise ConfigError(f"Profile {self.name}: placement must be gpu, cpu or multi-gpu.")
        if self.speculation not in ("none", "lookup", "twin", "auto"):
            raise ConfigError(f"Profile {self.name}: speculation must be none, lookup, twin "
                              f"or auto.")
        if not 256 <= int(self.n_ctx) <= 1 << 20:
            raise ConfigError(f"Profile {self.name}: context must be 256 to 1,048,576 tokens.")
        if self.sampling not in ("greedy", "top-k", "top-p", "min-p"):
            raise ConfigError(f"Profile {self.name}: unknown sampling preset "
                              f"{self.sampling!r}.")
        if not 0 <= self.temperature <= 2 or not 0 <= self.quality_target_pct <= 100:
            raise ConfigError(f"Profile {self.name}: temperature must be 0-2 and the quality "
                              f"target 0-100 %.")


BUILTINS: dict[str, Profile] = {p.name: p for p in (
    Profile("real-time-chat", "Real-time chat", "INT4", 1, "gpu", "lookup", 4096, "top-p",
            0.7, 100, 95, "large", False,
            "Seed: 7B, INT4, batch 1-2, GPU, 100 ms, 95 %. One sequence keeps every token's "
            "latency lowest; prompt lookup speeds up replies that quote the prompt.", True),
    Profile("bulk-processing", "Bulk processing", "INT8", 16, "gpu", "none", 2048, "greedy",
            0.0, 8000, 98, "large", False,
            "Seed: 13B, INT8, batch 16, GPU, 8 s, 98 %. Sixteen sequences decoded together "
            "for throughput; greedy for repeatable batch output.", True),
    Profile("cost-sensitive", "Cost-sensitive", "INT4", 4, "cpu", "lookup", 2048, "min-p",
            0.7, 2000, 90, "small", False,
            "Seed: 3B, INT4, batch 4, CPU, 2 s, 90 %. The smallest model on the CPU, four "
            "sequences at a time: no GPU power drawn.", True),
    Profile("high-quality", "High quality", "FP16", 2, "multi-gpu", "twin", 8192, "top-p",
            0.6, 500, 99, "large", True,
            "Seed: 70B, FP16, batch 2, multi-GPU, 500 ms, 99 %+. The largest model at the "
            "highest precision, over every GPU; its quantized twin drafts losslessly.", True),
)}


def all_profiles(user: list[dict[str, Any]] | None = None) -> dict[str, Profile]:
    """Built-ins then the user's (a user profile may not reuse a built-in name)."""
    out = dict(BUILTINS)
    for data in user or []:
        profile = Profile.from_dict(data)
        if profile.name in BUILTINS:
            raise ConfigError(f"{profile.name!r} is a built-in profile; give yours another "
                              f"name.")
        out[profile.name] = profile
    return out


def find_profile(name: str, user: list[dict[str, Any]] | None = None) -> Profile:
    profiles = all_profiles(user)
    if name not in profiles:
        raise ConfigError(f"Unknown profile {name!r}; choose one of {', '.join(profiles)}.")
    return profiles[name]


@dataclass
class ProfilePlan:
    """A profile made concrete for this machine (``chosen`` None: nothing in the library
    can run). ``basis`` is "measured" when benchmark figures decided, else "predicted"."""

    profile: Profile
    chosen: FilePlan | None
    path: str | None
    parallel: int
    n_ctx: int  # the whole context (every sequence's cells)
    n_ctx_per_seq: int
    n_gpu_layers: int
    placement: str
    speculation: str
    sampling: dict[str, Any]
    basis: str
    reasons: list[str]
    measured: Measurement | None
    plan: Plan
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name, "title": self.profile.title,
            "chosen": self.chosen.label if self.chosen else None, "path": self.path,
            "file_type": self.chosen.info.file_type_name if self.chosen else None,
            "parallel": self.parallel, "n_ctx": self.n_ctx, "n_ctx_per_seq": self.n_ctx_per_seq,
            "n_gpu_layers": self.n_gpu_layers, "placement": self.placement,
            "speculation": self.speculation, "sampling": self.sampling, "basis": self.basis,
            "reasons": self.reasons, "notes": self.notes,
            "targets": {"precision": self.profile.precision,
                        "latency_ms": self.profile.latency_target_ms,
                        "quality_pct": self.profile.quality_target_pct},
            "measured": self.measured.to_dict() if self.measured else None,
            "files": [f.to_dict() for f in self.plan.files],
            "vram_budget": self.plan.vram_budget, "ram_budget": self.plan.ram_budget,
        }


def file_bits(info: ModelInfo) -> int:
    """The precision class of a file (nominal bits), from its file type or its size."""
    bits = FILE_TYPE_BITS.get(info.file_type_name)
    return bits if bits is not None else max(2, round(info.bits_per_weight))


def _precision_gap(info: ModelInfo, profile: Profile) -> float:
    return abs(math.log2(file_bits(info) / profile.bits))


def plan_profile(profile: Profile, candidates: list[tuple[str, ModelInfo]],
                 hardware: HardwareProfile, measured: dict[str, Measurement] | None = None,
                 settings: PlanSettings | None = None) -> ProfilePlan:
    """The concrete plan of ``profile`` over ``candidates`` (label, header) on ``hardware``.
    ``measured`` maps a file's resolved path to its benchmark row."""
    reasons: list[str] = []
    hw = hardware
    if profile.placement == "cpu":
        hw = replace(hardware, gpus=[], gpu_offload_supported=False,
                     notes=[*hardware.notes, "profile: CPU only"])
        reasons.append("runs on the CPU, as the profile asks (no GPU power drawn)")
    base = settings or PlanSettings()
    total = profile.n_ctx * profile.parallel
    settings = replace(base, n_ctx=total, ctx_floor=min(base.ctx_floor, total),
                       n_seq_max=profile.parallel)
    result = plan(candidates, hw, settings)
    runnable = [f for f in result.files if f.fit is not Fit.TOO_LARGE]
    if not runnable:
        reasons.append("no model in the library fits this machine with this profile's "
                       f"context ({total:,} tokens over {profile.parallel} sequences)")
        return _plan_of(profile, None, None, result, reasons, "predicted")
    chosen, basis, row = _choose(profile, runnable, measured or {}, reasons)
    if profile.placement != "cpu" and chosen.fit is Fit.CPU:
        reasons.append("no GPU can take it here; runs on the CPU")
    elif profile.placement == "multi-gpu":
        n = len(hardware.gpus)
        reasons.append(f"llama.cpp splits the layers over the {n} GPUs" if n > 1 else
                       "one GPU here: the multi-GPU split has nothing to spread over")
    return _plan_of(profile, chosen, row, result, reasons, basis)


def _choose(profile: Profile, runnable: list[FilePlan], measured: dict[str, Measurement],
            reasons: list[str]) -> tuple[FilePlan, str, Measurement | None]:
    """Measured candidates that meet the quality target first, by the profile's goal;
    otherwise the precision preference and the predicted fit."""
    rows = {id(f): measured.get(str(Path(f.info.source).resolve())) for f in runnable}
    scored = [f for f in runnable if rows[id(f)] is not None]
    good = [f for f in scored if _meets_quality(rows[id(f)], profile)]  # type: ignore[arg-type]
    if good:
        pick = min(good, key=lambda f: _measured_key(profile, rows[id(f)], f))  # type: ignore[arg-type]
        row = rows[id(pick)]
        assert row is not None
        reasons.append(f"chosen from figures measured here ({row.summary().split(': ', 1)[1]})"
                       f"; {_goal_words(profile)}")
        if row.same_top_pct is not None:
            reasons.append(f"quality {row.same_top_pct:.1f} % same next token as "
                           f"{row.reference} (target {profile.quality_target_pct:g} %)")
        return pick, "measured", row
    if scored:
        reasons.append(f"no measured file meets the {profile.quality_target_pct:g} % quality "
                       f"target; ranked by precision preference instead")

    def key(f: FilePlan) -> tuple[float, ...]:
        gap = _precision_gap(f.info, profile)
        size = f.info.n_params if profile.model_size == "small" else -f.info.n_params
        fit = _FIT_RANK[f.fit] if profile.placement != "cpu" else 0
        if profile.quality_first:
            return (gap, size, fit, -f.n_ctx)
        if profile.model_size == "small":
            return (fit, size, gap, -f.n_ctx)
        return (fit, gap, size, -f.n_ctx)

    pick = min(runnable, key=key)
    bits = file_bits(pick.info)
    if bits == profile.bits:
        reasons.append(f"{pick.info.file_type_name} matches the {profile.precision} preference")
    else:
        reasons.append(f"{pick.info.file_type_name} is the nearest to the {profile.precision} "
                       f"preference in the library (make a {_suggest(profile)} variant with "
                       f"'hearth-cli quantize' or download one)")
    row = rows[id(pick)]
    return pick, "predicted", row


def _suggest(profile: Profile) -> str:
    return {"INT4": "Q4_K_M", "INT8": "Q8_0", "FP16": "F16", "FP32": "F32"}[profile.precision]


def _meets_quality(row: Measurement, profile: Profile) -> bool:
    """Unknown quality (no reference measured) passes: nothing says it falls short."""
    return row.same_top_pct is None or row.same_top_pct >= profile.quality_target_pct


def _measured_key(profile: Profile, row: Measurement, f: FilePlan) -> tuple[float, ...]:
    speed = row.parallel.get(str(profile.parallel)) or row.decode_tok_s or 0.0
    if profile.quality_first:
        return (row.kl_mean if row.kl_mean is not None else math.inf, -speed)
    if profile.model_size == "small":
        energy = row.j_per_token if row.j_per_token is not None else math.inf
        return (energy, f.info.file_size)
    return (-speed, row.kl_mean or 0.0)


def _goal_words(profile: Profile) -> str:
    if profile.quality_first:
        return "lowest KL divergence from the reference"
    if profile.model_size == "small":
        return "least energy per token"
    if profile.parallel > 1:
        return f"highest throughput at {profile.parallel} sequences (decode speed until measured)"
    return "fastest decode"


def _plan_of(profile: Profile, chosen: FilePlan | None, row: Measurement | None,
             result: Plan, reasons: list[str], basis: str) -> ProfilePlan:
    notes = list(result.notes)
    if chosen is None:
        return ProfilePlan(profile, None, None, profile.parallel, 0, 0, 0, profile.placement,
                           "none", _sampling(profile), basis, reasons, None, result, notes)
    per_seq = chosen.n_ctx // profile.parallel
    if chosen.n_ctx < profile.n_ctx * profile.parallel:
        reasons.append(f"context {per_seq:,} per sequence ({chosen.n_ctx:,} in all) instead of "
                       f"{profile.n_ctx:,}: {chosen.reason.rsplit('; ', 1)[-1]}")
    reasons.append(f"{chosen.status}: {chosen.reason}")
    spec = _speculation(profile, chosen, reasons)
    where = ("CPU" if chosen.n_gpu_layers == 0 else
             f"GPU {min(chosen.n_gpu_layers, chosen.info.n_layer)}/{chosen.info.n_layer} layers")
    return ProfilePlan(profile, chosen, chosen.info.source, profile.parallel, chosen.n_ctx,
                       per_seq, chosen.n_gpu_layers, where, spec, _sampling(profile), basis,
                       reasons, row, result, notes)


def _speculation(profile: Profile, chosen: FilePlan, reasons: list[str]) -> str:
    """The twin drafts only for a target of 8 bits or more (it is Q4_K_M of the target)."""
    wanted = profile.speculation
    if wanted == "none":
        if profile.parallel > 1:
            reasons.append("no speculation: parallel sequences already fill the compute")
        return "none"
    if wanted in ("twin", "auto"):
        if file_bits(chosen.info) >= 8:
            reasons.append("its Q4_K_M twin drafts tokens (lossless: output is unchanged)")
            return "twin"
        reasons.append(f"a quantized twin would be no smaller than {chosen.info.file_type_name}; "
                       "prompt lookup drafts instead")
        return "lookup"
    reasons.append("prompt lookup drafts tokens copied from the prompt (lossless)")
    return "lookup"


def _sampling(profile: Profile) -> dict[str, Any]:
    preset = "greedy" if profile.temperature == 0 else profile.sampling
    return {"preset": preset, "temperature": profile.temperature}


def library_candidates(library: Any = None) -> list[tuple[str, ModelInfo]]:
    """Every usable model in the library as (label, header) for :func:`plan_profile`."""
    from core.gguf.reader import read_local
    from core.models.library import Library

    lib = library or Library()
    out = []
    for entry in lib.models():
        if entry.usable:
            out.append((entry.name, read_local(entry.path)))
    return out
