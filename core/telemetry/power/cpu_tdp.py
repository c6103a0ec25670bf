"""A CPU's thermal design power, guessed from its model string, for the power estimate.

When neither NVML nor RAPL can be read, Hearth estimates power as the worker's share of the
CPU times a TDP. The TDP comes from this small table by CPU family (first pattern that
matches wins) unless the user sets one. The figures are the vendors' typical class values,
not per-SKU numbers: the estimate is labelled "estimated" everywhere it appears, and the
panel shows which family matched so the user can see why and correct it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern over the model string, family shown to the user, watts); order matters.
_TABLE: tuple[tuple[str, str, float], ...] = (
    (r"threadripper", "AMD Threadripper", 280.0),
    (r"epyc", "AMD EPYC (server)", 200.0),
    (r"ryzen.*\b\d{4}\s*u\b|ryzen.*\bai\b.*\bhx?\s*3\d\d", "AMD Ryzen mobile (U)", 15.0),
    (r"ryzen.*\b\d{4}\s*(h|hs|hx)\b", "AMD Ryzen mobile (H)", 45.0),
    (r"ryzen", "AMD Ryzen desktop", 65.0),
    (r"xeon", "Intel Xeon (server)", 150.0),
    (r"core\(tm\) ultra.*\d{3}u\b|core ultra.*\d{3}u\b", "Intel Core Ultra (U)", 15.0),
    (r"core.*ultra.*\d{3}h\b", "Intel Core Ultra (H)", 28.0),
    (r"i[3579]-\d{4,5}[a-z]*u\b", "Intel Core mobile (U)", 15.0),
    (r"i[3579]-\d{4,5}[a-z]*h[a-z]*\b", "Intel Core mobile (H)", 45.0),
    (r"i[3579]-\d{4,5}(g\d|p)\b", "Intel Core mobile (P/G)", 28.0),
    (r"i[3579]-\d{4,5}k", "Intel Core desktop (K)", 125.0),
    (r"core|i[3579]-", "Intel Core desktop", 65.0),
    (r"celeron|pentium|atom|\bn[12]\d\d\b", "Intel low-power", 10.0),
    (r"apple m\d", "Apple M-series", 20.0),
    (r"cortex-a|raspberry", "ARM Cortex-A (SBC)", 5.0),
    (r"neoverse|ampere|graviton", "ARM server", 150.0),
)
DEFAULT_TDP_W = 65.0


@dataclass(frozen=True)
class TdpGuess:
    """A TDP and where it came from (``basis`` is shown next to the estimate)."""

    watts: float
    family: str
    basis: str  # "table", "default" or "user"


def guess_tdp(cpu_model: str, user_watts: float | None = None) -> TdpGuess:
    """The user's TDP when set (> 0), else the table's by family, else 65 W."""
    if user_watts is not None and user_watts > 0:
        return TdpGuess(float(user_watts), "set by you", "user")
    text = cpu_model.lower()
    for pattern, family, watts in _TABLE:
        if re.search(pattern, text):
            return TdpGuess(watts, family, "table")
    return TdpGuess(DEFAULT_TDP_W, "unknown CPU family", "default")
