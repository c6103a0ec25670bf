"""Cost per query here against the cloud: every figure equals the hand calculation."""

from __future__ import annotations

import pytest

from core.telemetry.cost import DAYS_PER_MONTH, CostInputs, CostReport, energy_per_query


def test_the_seeds_example_by_hand() -> None:
    # Seed: $2000 over 6 months, $50/month maintenance, cloud $0.01/1K tokens, 100 tokens.
    # Here a query draws 360 J (0.1 Wh) at $0.15/kWh.
    inputs = CostInputs(joules_per_query=360.0, energy_label="measured",
                        electricity_usd_per_kwh=0.15, hardware_usd=2000.0,
                        amortization_months=6, maintenance_usd_month=50.0,
                        cloud_usd_per_1k_tokens=0.01, tokens_per_query=100)
    r = CostReport(inputs)
    energy = 360.0 / 3_600_000 * 0.15  # kWh × price = $0.000015
    assert r.energy_usd_per_query == pytest.approx(energy)
    assert r.hardware_usd_month == pytest.approx(2000 / 6)
    assert r.fixed_usd_month == pytest.approx(2000 / 6 + 50)
    assert r.cloud_usd_per_query == pytest.approx(0.001)  # the seed's "100 tokens: $0.001"
    q = 10_000
    assert DAYS_PER_MONTH == 30
    assert r.local_usd_month(q) == pytest.approx(2000 / 6 + 50 + q * 30 * energy)
    assert r.cloud_usd_month(q) == pytest.approx(q * 30 * 0.001)
    assert r.local_usd_per_query(q) == pytest.approx((2000 / 6 + 50) / (q * 30) + energy)
    assert r.local_usd_per_1k_tokens(q) == pytest.approx(r.local_usd_per_query(q) * 10)
    even = (2000 / 6 + 50) / (30 * (0.001 - energy))
    assert r.break_even_queries_per_day == pytest.approx(even)
    assert 12_000 < even < 13_500  # the seed's ~16K with its $100 electricity as a flat line
    # At break-even both sides cost the same.
    assert r.local_usd_month(even) == pytest.approx(r.cloud_usd_month(even))


def test_no_break_even_when_electricity_alone_costs_more_than_the_cloud() -> None:
    r = CostReport(CostInputs(joules_per_query=30_000_000.0, energy_label="estimated",
                              electricity_usd_per_kwh=0.30, hardware_usd=500.0,
                              amortization_months=12))
    assert r.energy_usd_per_query > r.cloud_usd_per_query
    assert r.break_even_queries_per_day is None
    assert r.plot_range() == 50_000.0


def test_curve_and_plot_range() -> None:
    r = CostReport(CostInputs(joules_per_query=100.0, energy_label="measured",
                              electricity_usd_per_kwh=0.2, hardware_usd=1200.0,
                              amortization_months=12))
    even = r.break_even_queries_per_day
    assert even is not None and r.plot_range() == pytest.approx(2.5 * even)
    points = r.curve(r.plot_range(), 11)
    assert len(points) == 11 and points[0] == (0.0, 100.0, 0.0)
    q, local, cloud = points[-1]
    assert local == pytest.approx(100.0 + q * 30 * 100.0 / 3.6e6 * 0.2)
    assert cloud == pytest.approx(q * 30 * 0.001) and cloud > local


def test_energy_per_query_prefers_the_session_then_the_benchmark() -> None:
    assert energy_per_query(100, session_joules=50.0, session_tokens=200,
                            session_label="measured", bench_j_per_token=9.0) == \
        (25.0, "measured", "this session")
    assert energy_per_query(100, bench_j_per_token=0.5, bench_label="estimated") == \
        (50.0, "estimated", "the benchmark")
    assert energy_per_query(100) is None
    with pytest.raises(ValueError):
        CostInputs(1.0, "measured", 0.1, 1.0, amortization_months=0)
