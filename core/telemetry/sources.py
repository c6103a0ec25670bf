"""Where power readings come from, and the choice among them.

Each source turns "now" into watts: NVML for NVIDIA GPUs (:mod:`core.telemetry.nvml`), RAPL
energy counters for the CPU package (:mod:`core.telemetry.rapl`), and, when neither can be
read, an estimate from the worker's CPU share and a TDP (:mod:`core.telemetry.estimate`).
:func:`detect_power` tries them in that order and records why each one that could not be
used was skipped, so the panel can say "estimated, because RAPL is root-only here" instead of
silently showing a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from core.errors import HearthError

Label = Literal["measured", "estimated"]
Kind = Literal["cpu", "gpu"]


class SourceUnavailable(HearthError):
    """A power source cannot be read here; ``str()`` says why (shown next to the fallback)."""


class PowerSource:
    """One thing that reports watts. Subclasses set the class attributes and ``read``.

    ``read`` gets the sampler's timestamp (``perf_counter_ns``) so counter-based sources
    divide energy by the same clock the requests are timed with, and the worker's CPU% (of
    one core, as ``top`` shows it) for sources that estimate from it. It returns None when
    it has nothing for this instant (a counter's first read, a transient failure)."""

    name: str = "source"
    kind: Kind = "cpu"
    label: Label = "measured"
    formula: str = ""

    def read(self, t_ns: int, cpu_percent: float | None = None) -> float | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (files, the NVML library); idempotent."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "label": self.label,
                "formula": self.formula}


@dataclass
class PowerSetup:
    """The sources in use and the reasons others were not used."""

    sources: list[PowerSource]
    unavailable: list[dict[str, str]] = field(default_factory=list)

    @property
    def label(self) -> Label:
        """"measured" only when every figure that adds into the total is measured."""
        ok = self.sources and all(s.label == "measured" for s in self.sources)
        return "measured" if ok else "estimated"

    @property
    def formula(self) -> str:
        if len(self.sources) == 1:
            return self.sources[0].formula
        parts = [f"{s.name}: {s.formula}" for s in self.sources]
        return " + ".join(parts) if parts else "no power source"

    @property
    def gpu(self) -> Any:
        """The NVML source (for utilisation, VRAM and temperature), or None."""
        return next((s for s in self.sources if s.kind == "gpu"), None)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "formula": self.formula,
                "sources": [s.describe() for s in self.sources],
                "unavailable": list(self.unavailable)}

    def close(self) -> None:
        for s in self.sources:
            s.close()


def detect_power(
    *,
    nvml: ModuleType | None = None,
    use_nvml: bool = True,
    rapl_root: Path | None = None,
    hwmon_root: Path | None = None,
    cpu_model: str | None = None,
    tdp_w: float | None = None,
    logical_cores: int | None = None,
) -> PowerSetup:
    """Open every measured source that works here; fall back to the CPU estimate when none
    does. ``nvml`` is a pynvml-shaped module (None: import pynvml); the roots default to
    the kernel's ``/sys/class/powercap`` and ``/sys/class/hwmon``; ``tdp_w`` is the user's
    TDP setting (None or 0: from the table by ``cpu_model``)."""
    from core.telemetry.estimate import EstimatedCpuPower
    from core.telemetry.nvml import NvmlGpus
    from core.telemetry.rapl import RaplPower

    sources: list[PowerSource] = []
    unavailable: list[dict[str, str]] = []
    if use_nvml:
        try:
            sources.append(NvmlGpus(nvml))
        except SourceUnavailable as err:
            unavailable.append({"name": "nvml", "reason": str(err)})
    else:
        unavailable.append({"name": "nvml", "reason": "NVML was turned off."})
    try:
        sources.append(RaplPower(rapl_root, hwmon_root))
    except SourceUnavailable as err:
        unavailable.append({"name": "rapl", "reason": str(err)})
    if not sources:
        if cpu_model is None:
            from core.hardware import _cpu_model

            cpu_model = _cpu_model()
        sources.append(EstimatedCpuPower(cpu_model, tdp_w, logical_cores))
    return PowerSetup(sources, unavailable)
