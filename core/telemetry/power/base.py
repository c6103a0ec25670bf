"""What a power source is: something that reports watts now, labelled measured or estimated.

Each source turns "now" into watts: NVML for NVIDIA GPUs (:mod:`core.telemetry.power.nvml`),
RAPL energy counters for the CPU package (:mod:`core.telemetry.power.rapl`), and, when neither
can be read, an estimate from the worker's CPU share and a TDP
(:mod:`core.telemetry.power.estimate`); :mod:`core.telemetry.power.detect` chooses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
