"""NVIDIA GPU power, utilisation, memory and temperature through NVML (nvidia-ml-py).

The library is initialised and the device handles fetched once, when the source is made;
each read is then a few cheap driver queries. Power comes from the total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and later) as Δenergy ÷ Δtime
where the GPU has it — an exact average over the sampling interval — and otherwise from
``nvmlDeviceGetPowerUsage`` (milliwatts; on many boards itself a short running average).

The module is a parameter (default: ``import pynvml``) so tests can check the plumbing with
a pynvml-shaped object on machines without a GPU; real readings need an NVIDIA driver.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from core.telemetry.power.base import PowerSource, SourceUnavailable


@dataclass(frozen=True, slots=True)
class GpuStats:
    """All GPUs together: busiest utilisation, summed memory, hottest temperature."""

    util_pct: float | None
    vram_used_bytes: int | None
    vram_total_bytes: int | None
    temp_c: float | None


def _why(err: BaseException) -> str:
    text = str(err)
    return text.decode() if isinstance(text, bytes) else (text or type(err).__name__)


class NvmlGpus(PowerSource):
    """Every NVIDIA GPU NVML lists; ``read`` returns their summed board power."""

    name = "nvml"
    kind = "gpu"
    label = "measured"

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        if nvml is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError as err:
                raise SourceUnavailable(f"NVML is not installed ({err}).") from err
            nvml = pynvml
        self._nvml: Any = nvml
        try:
            nvml.nvmlInit()
        except Exception as err:
            raise SourceUnavailable(f"NVML could not start ({_why(err)}).") from err
        self._open = True
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i)
                             for i in range(nvml.nvmlDeviceGetCount())]
            if not self._handles:
                raise SourceUnavailable("NVML found no NVIDIA GPU.")
            self._energy_mj: list[int | None] = [self._energy(h) for h in self._handles]
        except SourceUnavailable:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise SourceUnavailable(f"NVML failed while listing GPUs ({_why(err)}).") from err
        self._has_energy = [e is not None for e in self._energy_mj]
        self._prev_t: int | None = None
        self.last_error: str | None = None
        how = ("Δ total-energy counter ÷ Δ time" if all(self._has_energy)
               else "nvmlDeviceGetPowerUsage")
        self.formula = f"measured: NVML {how}, {len(self._handles)} GPU(s)"

    def _energy(self, handle: Any) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:
            return None

    def read(self, t_ns: int, cpu_percent: float | None = None) -> float | None:
        """Summed watts over all GPUs; None if NVML fails (kept in ``last_error``)."""
        nvml = self._nvml
        prev_t, self._prev_t = self._prev_t, t_ns
        dt_s = (t_ns - prev_t) / 1e9 if prev_t is not None and t_ns > prev_t else 0.0
        total = 0.0
        try:
            for i, handle in enumerate(self._handles):
                prev_mj = self._energy_mj[i]
                now_mj = self._energy(handle) if self._has_energy[i] else None
                self._energy_mj[i] = now_mj
                if now_mj is not None and prev_mj is not None and dt_s > 0:
                    total += (now_mj - prev_mj) / 1000.0 / dt_s
                else:
                    total += nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception as err:
            self.last_error = _why(err)
            return None
        return total

    def stats(self) -> GpuStats:
        """Utilisation, VRAM and temperature now (fields None where NVML refuses)."""
        nvml = self._nvml
        util: float | None = None
        used = total = 0
        temp: float | None = None
        try:
            for handle in self._handles:
                u = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                util = u if util is None else max(util, u)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                used += int(mem.used)
                total += int(mem.total)
                t = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                temp = t if temp is None else max(temp, t)
        except Exception as err:
            self.last_error = _why(err)
            return GpuStats(None, None, None, None)
        return GpuStats(util, used, total, temp)

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
