"""Energy is the integral of sampled power over the request window — checked against
synthetic power sources whose integral is known, fed through the real sampler."""

from __future__ import annotations

import math
import time

import pytest

from core.engine.metrics import RequestMetrics
from core.telemetry.accounting import accounting_for, integrate_energy
from core.telemetry.power.base import PowerSetup, PowerSource
from core.telemetry.sampler import Sample, TelemetrySampler

S = 1_000_000_000


class RampSource(PowerSource):
    """P(t) = a + b·(t - t0) watts: linear, so the trapezoid rule is exact for it."""

    name = "ramp"
    label = "measured"
    formula = "synthetic ramp"

    def __init__(self, t0_ns: int, a: float, b_per_s: float) -> None:
        self.t0, self.a, self.b = t0_ns, a, b_per_s

    def power(self, t_ns: int) -> float:
        return self.a + self.b * (t_ns - self.t0) / S

    def read(self, t_ns: int, cpu_percent: float | None = None) -> float | None:
        return self.power(t_ns)

    def energy(self, t0_ns: int, t1_ns: int) -> float:
        return (self.power(t0_ns) + self.power(t1_ns)) / 2 * (t1_ns - t0_ns) / S


def _samples(points: list[tuple[float, float | None]], label: str = "measured") -> list[Sample]:
    return [Sample(int(t * S), w, label, w, None, None, None) for t, w in points]  # type: ignore[arg-type]


def test_energy_of_a_synthetic_source_through_the_sampler_and_accounting() -> None:
    src = RampSource(time.perf_counter_ns(), a=20.0, b_per_s=40.0)
    with TelemetrySampler(hz=10, power=PowerSetup([src])) as sampler:
        time.sleep(0.15)
        t0 = time.perf_counter_ns()
        time.sleep(0.5)
        t1 = time.perf_counter_ns()
        time.sleep(0.12)
        metrics = RequestMetrics(total_ms=(t1 - t0) / 1e6, decode_tokens=10)
        acc = accounting_for(metrics, sampler.window(t0, t1), t_end_ns=t1,
                             formula=sampler.power.formula)
    expected = src.energy(acc.t_start_ns, t1)
    assert acc.t_start_ns == pytest.approx(t0, abs=1000)
    assert acc.joules == pytest.approx(expected, rel=1e-9)
    assert acc.energy.label == "measured" and acc.energy.coverage == 1.0
    assert acc.energy.n_samples >= 6
    assert acc.j_per_token == pytest.approx(expected / 10, rel=1e-9)
    assert acc.to_dict()["energy"]["formula"] == "synthetic ramp"


def test_edges_are_interpolated_between_readings() -> None:
    samples = _samples([(0.0, 10.0), (0.1, 20.0), (0.2, 20.0), (0.3, 10.0)])
    e = integrate_energy(samples, int(0.05 * S), int(0.25 * S))
    # 15 W at both edges: (15+20)/2·0.05 + 20·0.1 + (20+15)/2·0.05
    assert e.joules == pytest.approx(3.75, rel=1e-12)
    assert e.mean_w == pytest.approx(18.75) and e.coverage == 1.0


def test_smooth_power_within_the_trapezoid_error_bound() -> None:
    # P(t) = 100 + 50 sin(2πt/T), sampled every h; |error| <= T_window·h²·max|P''|/12.
    period, h = 0.7, 0.1
    samples = _samples([(i * h, 100 + 50 * math.sin(2 * math.pi * i * h / period))
                        for i in range(31)])
    t0, t1 = 0.23, 2.61
    w = 2 * math.pi / period
    exact = 100 * (t1 - t0) - 50 / w * (math.cos(w * t1) - math.cos(w * t0))
    bound = (t1 - t0) * h**2 * 50 * w**2 / 12 + 2 * 50 * w * h**2  # + edge interpolation
    e = integrate_energy(samples, int(t0 * S), int(t1 * S))
    assert abs(e.joules - exact) <= bound
    assert abs(e.joules - exact) / exact < 0.03


def test_missing_readings_and_short_coverage() -> None:
    samples = _samples([(0.0, None), (0.1, 10.0), (0.2, None), (0.3, 30.0)], "estimated")
    e = integrate_energy(samples, int(0.1 * S), int(0.3 * S))
    assert e.joules == pytest.approx(4.0) and e.n_samples == 2 and e.label == "estimated"
    # Past the last reading the power is held, and coverage says how much was held.
    late = integrate_energy(samples, int(0.2 * S), int(0.5 * S))
    assert late.coverage == pytest.approx(1 / 3, rel=1e-3)
    assert late.joules == pytest.approx((20 + 30) / 2 * 0.1 + 30 * 0.2)
    none = integrate_energy(_samples([(0.0, None)]), 0, S)
    assert none.joules is None and none.mean_w is None
