"""What one request cost: where the time went, the energy it drew, and its price.

The time breakdown follows the seed's pipeline (tokenize → model inference → de-tokenize →
post-process), cut from :class:`RequestMetrics` into phases that do not overlap, so they add
up to the request's total by construction and "other" is only what no clock covered:

* ``tokenize``   chat-template rendering + tokenization;
* ``prefill``    from the end of tokenization to the first sampled token (prompt evaluation
                 and the first token's sampling — the first token belongs to the prefill,
                 as in ``RequestMetrics``); equals TTFT minus tokenize;
* ``decode``     from the first to the last sampled token, minus the de-tokenization that
                 happened inside that span;
* ``detokenize`` token bytes → text (incremental UTF-8 decoding, stop strings);
* ``other``      the rest: after the last token (flushing held text, collecting counters).

Energy is the trapezoid integral of the sampled power over the request's window
``[end - total, end]``, with the power linearly interpolated at the window's edges; it is
labelled "measured" or "estimated" as the samples were. When requests ran together (the
scheduler batches them), each step's work is split between them in proportion to the tokens
each put into that step (``RequestMetrics.engine_share_ms``): a request is charged the
window's energy times its share of the engine time over that window, so concurrent requests
add up to what the machine drew and nothing is counted twice. Cost is energy × electricity price,
set against the seed's cloud reference ("Cloud API (OpenAI): $0.01 per 1K tokens").
Everything converts to plain JSON types with ``to_dict``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.engine.api import DoneEvent
from core.engine.metrics import RequestMetrics
from core.telemetry.sampler import Sample, TelemetrySampler

J_PER_KWH = 3_600_000.0
DEFAULT_PRICE_USD_KWH = 0.15  # the seed's "@ $0.15/kWh"
CLOUD_USD_PER_1K_TOKENS = 0.01  # the seed's "Cloud API (OpenAI): $0.01 per 1K tokens"
CLOUD_SOURCE = "seed reference: Cloud API (OpenAI), $0.01 per 1K tokens"


@dataclass(frozen=True)
class CostSettings:
    """Prices for the cost lines (US dollars)."""

    usd_per_kwh: float = DEFAULT_PRICE_USD_KWH
    cloud_usd_per_1k_tokens: float = CLOUD_USD_PER_1K_TOKENS


@dataclass(frozen=True)
class Phase:
    name: str
    ms: float
    pct: float


@dataclass(frozen=True)
class EnergyIntegral:
    """Joules over a window; ``coverage`` is the share of the window lying between the
    first and last power readings (below 1, the edges were held at the nearest reading)."""

    joules: float | None
    label: str
    n_samples: int
    coverage: float
    mean_w: float | None
    share: float = 1.0  # the request's part of the window's energy (1: it ran alone)


def breakdown(m: RequestMetrics) -> list[Phase]:
    """The request's time in non-overlapping phases that sum to ``m.total_ms``."""
    tokenize = m.template_ms + m.tokenize_ms
    prefill = m.ttft_ms - tokenize if m.ttft_ms > 0 else m.prefill_ms
    decode = max(0.0, m.decode_ms - m.detokenize_ms)
    detok = m.detokenize_ms
    named = [("tokenize", tokenize), ("prefill", max(0.0, prefill)), ("decode", decode),
             ("detokenize", detok)]
    other = m.total_ms - sum(ms for _, ms in named)
    named.append(("other", max(0.0, other)))
    total = m.total_ms if m.total_ms > 0 else 1.0
    return [Phase(name, round(ms, 3), round(100.0 * ms / total, 2)) for name, ms in named]


def integrate_energy(samples: Sequence[Sample], t0_ns: int, t1_ns: int) -> EnergyIntegral:
    """Trapezoid integral of ``power_w`` over ``[t0_ns, t1_ns]`` in joules. Samples without
    a power reading are skipped; at each edge the power is interpolated between the
    readings either side, or held at the nearest reading where the window runs past them."""
    pts = sorted((s.t_ns, s.power_w) for s in samples if s.power_w is not None)
    label = "measured" if samples and all(s.label == "measured" for s in samples) else "estimated"
    if not pts or t1_ns <= t0_ns:
        return EnergyIntegral(None if not pts else 0.0, label, len(pts), 0.0, None)
    inner = [(t, w) for t, w in pts if t0_ns < t < t1_ns]
    path = [(t0_ns, _power_at(pts, t0_ns)), *inner, (t1_ns, _power_at(pts, t1_ns))]
    joules = 0.0
    for (ta, wa), (tb, wb) in itertools.pairwise(path):
        joules += (wa + wb) * 0.5 * (tb - ta) / 1e9
    span = min(t1_ns, pts[-1][0]) - max(t0_ns, pts[0][0])
    coverage = max(0.0, span) / (t1_ns - t0_ns)
    mean_w = joules / ((t1_ns - t0_ns) / 1e9)
    return EnergyIntegral(joules, label, len(pts), round(coverage, 4), mean_w)


def _power_at(pts: list[tuple[int, float]], t: int) -> float:
    """Power at ``t``: linear between the readings around it, else the nearest reading."""
    if t <= pts[0][0]:
        return pts[0][1]
    if t >= pts[-1][0]:
        return pts[-1][1]
    for (ta, wa), (tb, wb) in itertools.pairwise(pts):
        if ta <= t <= tb:
            return wa if tb == ta else wa + (wb - wa) * (t - ta) / (tb - ta)
    return pts[-1][1]  # unreachable: pts is sorted


@dataclass
class RequestAccounting:
    """Time, speed, energy and cost of one request (see the module docstring)."""

    total_ms: float
    ttft_ms: float
    decode_tok_s: float
    prefill_tok_s: float
    prompt_tokens: int
    generated_tokens: int
    phases: list[Phase]
    token_latencies_ms: list[float]
    energy: EnergyIntegral
    formula: str
    t_start_ns: int
    t_end_ns: int
    prices: CostSettings = field(default_factory=CostSettings)

    @property
    def joules(self) -> float | None:
        return self.energy.joules

    @property
    def wh(self) -> float | None:
        return None if self.joules is None else self.joules / 3600.0

    @property
    def j_per_token(self) -> float | None:
        """Energy per generated token (the whole request's energy, prefill included)."""
        if self.joules is None or self.generated_tokens <= 0:
            return None
        return self.joules / self.generated_tokens

    @property
    def cost_usd(self) -> float | None:
        return None if self.joules is None else self.joules / J_PER_KWH * self.prices.usd_per_kwh

    @property
    def usd_per_1k_tokens(self) -> float | None:
        """Electricity cost per 1,000 generated tokens (as the seed's cloud line counts)."""
        cost = self.cost_usd
        if cost is None or self.generated_tokens <= 0:
            return None
        return cost / self.generated_tokens * 1000.0

    def to_dict(self) -> dict[str, Any]:
        p = self.prices
        return {
            "total_ms": round(self.total_ms, 3),
            "ttft_ms": round(self.ttft_ms, 3),
            "decode_tok_s": round(self.decode_tok_s, 3),
            "prefill_tok_s": round(self.prefill_tok_s, 3),
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "breakdown": [{"phase": ph.name, "ms": ph.ms, "pct": ph.pct} for ph in self.phases],
            "token_latencies_ms": [round(x, 3) for x in self.token_latencies_ms],
            "energy": {
                "joules": _r(self.joules, 4), "wh": _r(self.wh, 7),
                "j_per_token": _r(self.j_per_token, 5), "mean_w": _r(self.energy.mean_w, 3),
                "label": self.energy.label, "formula": self.formula,
                "samples": self.energy.n_samples, "coverage": self.energy.coverage,
                "share": self.energy.share,
            },
            "cost": {
                "usd": _r(self.cost_usd, 9), "usd_per_1k_tokens": _r(self.usd_per_1k_tokens, 9),
                "electricity_usd_per_kwh": p.usd_per_kwh,
                "cloud_usd_per_1k_tokens": p.cloud_usd_per_1k_tokens,
                "cloud_usd": round(self.generated_tokens / 1000.0 * p.cloud_usd_per_1k_tokens, 9),
                "cloud_reference": CLOUD_SOURCE,
            },
            "window_ns": [self.t_start_ns, self.t_end_ns],
        }


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def accounting_for(
    done: DoneEvent | RequestMetrics,
    samples: Sequence[Sample],
    *,
    t_end_ns: int | None = None,
    formula: str = "",
    prices: CostSettings | None = None,
) -> RequestAccounting:
    """Account for a finished request. ``samples`` come from ``TelemetrySampler.window``;
    ``t_end_ns`` is when the request ended on the ``perf_counter_ns`` clock (default: now,
    right for a caller that accounts as soon as the DoneEvent arrives); the window starts
    ``total_ms`` earlier. ``formula`` is the power setup's (``sampler.power.formula``)."""
    m = done.metrics if isinstance(done, DoneEvent) else done
    if t_end_ns is None:  # the engine's own end stamp, once RequestMetrics carries one
        t_end_ns = getattr(m, "t_end_ns", 0) or time.perf_counter_ns()
    t1 = t_end_ns
    t0 = t1 - int(m.total_ms * 1e6)
    energy = integrate_energy(samples, t0, t1)
    if m.concurrent and m.engine_share_ms > 0 and m.total_ms > 0:
        share = min(1.0, m.engine_share_ms / m.total_ms)
        energy = replace(energy, share=round(share, 4),
                         joules=None if energy.joules is None else energy.joules * share)
    return RequestAccounting(
        total_ms=m.total_ms, ttft_ms=m.ttft_ms, decode_tok_s=m.decode_tok_s,
        prefill_tok_s=m.prefill_tok_s, prompt_tokens=m.prompt_tokens,
        generated_tokens=m.decode_tokens, phases=breakdown(m),
        token_latencies_ms=list(m.token_latencies_ms), energy=energy, formula=formula,
        t_start_ns=t0, t_end_ns=t1, prices=prices or CostSettings(),
    )


def account(
    sampler: TelemetrySampler,
    done: DoneEvent | RequestMetrics,
    *,
    t_end_ns: int | None = None,
    prices: CostSettings | None = None,
) -> RequestAccounting:
    """:func:`accounting_for` with the samples and formula taken from ``sampler``: what the
    CLI and the GUI bridge call as soon as a DoneEvent arrives."""
    m = done.metrics if isinstance(done, DoneEvent) else done
    if t_end_ns is None:
        t_end_ns = getattr(m, "t_end_ns", 0) or time.perf_counter_ns()
    t_start_ns = t_end_ns - int(m.total_ms * 1e6)
    return accounting_for(done, sampler.window(t_start_ns, t_end_ns), t_end_ns=t_end_ns,
                          formula=sampler.power.formula, prices=prices)
