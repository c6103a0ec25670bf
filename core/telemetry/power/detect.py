"""The choice among power sources, with the reason each unusable one was skipped.

:func:`detect_power` tries NVML, then RAPL, then the CPU estimate, and records why each
source that could not be used was skipped, so the panel can say "estimated, because RAPL is
root-only here" instead of silently showing a made-up number.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from core.telemetry.power.base import PowerSetup, PowerSource, SourceUnavailable
from core.telemetry.power.estimate import EstimatedCpuPower
from core.telemetry.power.nvml import NvmlGpus
from core.telemetry.power.rapl import RaplPower


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
            from core.planning.hardware import cpu_model as read_cpu_model

            cpu_model = read_cpu_model()
        sources.append(EstimatedCpuPower(cpu_model, tdp_w, logical_cores))
    return PowerSetup(sources, unavailable)
