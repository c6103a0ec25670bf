"""How the benchmarks turn samples into one ratio, and keep a busy machine from deciding it.

On the 2-core machines this project runs on, the same llama.cpp run swings by ±15% from one
minute to the next (other virtual machines on the host, thermal state); a ratio of two means
taken a minute apart mostly measures that drift. So every bench takes its samples in pairs —
Hearth and the peer back to back, in alternating order — and a row's ratio is the median of
the pairs' ratios: drift common to both sides of a pair cancels, and one bad pair cannot move
the median the way it moves a mean.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Sequence


def paired_ratio(hearth: Sequence[float], reference: Sequence[float]) -> float:
    """Median of ``hearth[i] / reference[i]`` when the samples are pairs (same count);
    otherwise the ratio of the medians. NaN samples (nothing measured) are left out."""
    pairs = [(h, r) for h, r in zip(hearth, reference, strict=False)
             if not (math.isnan(h) or math.isnan(r)) and r]
    if pairs and len(hearth) == len(reference):
        return statistics.median(h / r for h, r in pairs)
    h = [x for x in hearth if not math.isnan(x)]
    r = [x for x in reference if not math.isnan(x)]
    if not h or not r or not statistics.median(r):
        return math.nan
    return statistics.median(h) / statistics.median(r)


def median(values: Sequence[float]) -> float:
    """Median of the measured samples (NaN when there are none)."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def load_1m() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def wait_quiet(section: str, max_load: float, timeout_s: float = 120.0) -> float:
    """Wait (up to ``timeout_s``) for the load average to fall to ``max_load`` before a
    section starts: llama.cpp's threads fill every core, so anything else running makes both
    sides collapse unevenly. Says on stderr when it waits or gives up; returns the load the
    section starts at, which the results keep."""
    if max_load <= 0:
        return load_1m()
    deadline = time.monotonic() + timeout_s
    load = load_1m()
    if load > max_load:
        print(f"[bench] {section}: load {load:.1f} > {max_load:g}, waiting up to "
              f"{timeout_s:.0f} s for the machine to go quiet", file=sys.stderr, flush=True)
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = load_1m()
    if load > max_load:
        print(f"[bench] {section}: still at load {load:.1f}; its figures are unreliable",
              file=sys.stderr, flush=True)
    return load
