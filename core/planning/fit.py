"""Fit labels for the model picker: the planner's verdict on each file, for this machine.

A repo lists many quants of one model. Reading every file's header over the network would
cost megabytes each (Gemma's vocabulary alone is ~7 MB), so one header is read — the
smallest complete model's — and the other files are planned from that architecture and their
own sizes (``planner.synthesize``); the planner says so in the file's metadata. Local files
are planned from their own headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.gguf.info import FTYPE_NAMES, ModelInfo
from core.gguf.reader import read_local
from core.models.hub.files import HubModel
from core.models.hub.remote_header import hub_file_url, read_remote
from core.planning.hardware import HardwareProfile
from core.planning.planner import FilePlan, PlanSettings, plan, synthesize

_FTYPE_BY_NAME = {name.upper(): code for code, name in FTYPE_NAMES.items()}


@dataclass
class FitResult:
    """Each file's plan by name, and the recommended file (None: nothing fits)."""

    plans: dict[str, FilePlan]
    recommended: str | None
    notes: list[str]


def label(plan_: FilePlan) -> str:
    """One line for a list: the verdict and the memory it needs."""
    est = plan_.estimate
    if est is None:
        return plan_.status
    memory = f"{est.vram_bytes / 2**30:.1f} GiB VRAM + " if est.vram_bytes else ""
    return f"{plan_.status} · {memory}{est.host_bytes / 2**30:.1f} GiB RAM"


def fit_hub_models(models: list[HubModel], hardware: HardwareProfile,
                   settings: PlanSettings | None = None,
                   read_header: Callable[[str], ModelInfo] = read_remote) -> FitResult:
    """Plan every complete, non-projector model of one repo for ``hardware``."""
    runnable = [m for m in models if m.complete and not m.projector]
    if not runnable:
        return FitResult({}, None, ["This repo has no runnable GGUF model."])
    probe = min(runnable, key=lambda m: m.size)
    base = read_header(hub_file_url(probe.repo_id, probe.first_file))
    candidates: list[tuple[str, ModelInfo]] = []
    for model in runnable:
        if model is probe:
            candidates.append((model.name, base))
            continue
        ftype = _FTYPE_BY_NAME.get((model.quant or "").upper(), base.file_type)
        candidates.append((model.name, synthesize(base.metadata, model.size, ftype,
                                                  f"{model.repo_id}/{model.name}")))
    result = plan(candidates, hardware, settings)
    return FitResult({p.label: p for p in result.files},
                     result.chosen.label if result.chosen else None, result.notes)


def fit_local(path: Path, hardware: HardwareProfile,
              settings: PlanSettings | None = None) -> FilePlan:
    """The plan for one file on disk (its own header)."""
    info = read_local(path)
    return plan([(path.name, info)], hardware, settings).files[0]
