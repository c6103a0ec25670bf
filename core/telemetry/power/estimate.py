"""The fallback when no power counter is readable: worker CPU share × TDP, labelled so.

``P ≈ (worker CPU% ÷ (100 × logical cores)) × TDP``. It ignores idle power, memory and the
rest of the board, and a TDP is a thermal budget rather than a draw, so it is a rough
order of magnitude — which is why it is always labelled "estimated" and carries its formula
and the TDP's origin (table family or the user's own figure) for the panel to show.
"""

from __future__ import annotations

import os

from core.telemetry.power.base import PowerSource
from core.telemetry.power.cpu_tdp import TdpGuess, guess_tdp


class EstimatedCpuPower(PowerSource):
    """Estimated CPU power of the worker process from its CPU share."""

    name = "estimate"
    kind = "cpu"
    label = "estimated"

    def __init__(self, cpu_model: str, tdp_w: float | None = None,
                 logical_cores: int | None = None) -> None:
        self.tdp: TdpGuess = guess_tdp(cpu_model, tdp_w)
        self.cores = logical_cores or os.cpu_count() or 1
        origin = ("your setting" if self.tdp.basis == "user"
                  else f"{self.tdp.family}, from the CPU model {cpu_model!r}")
        self.formula = (f"estimated: worker CPU% ÷ (100 × {self.cores} logical cores) × "
                        f"TDP {self.tdp.watts:g} W ({origin}; set your own TDP to correct it)")

    def read(self, t_ns: int, cpu_percent: float | None = None) -> float | None:
        if cpu_percent is None:
            return None
        share = min(1.0, max(0.0, cpu_percent / (100.0 * self.cores)))
        return share * self.tdp.watts
