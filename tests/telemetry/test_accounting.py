"""Breakdown arithmetic, cost lines and the session ledger on hand-made metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.engine.metrics import RequestMetrics
from core.telemetry import CostSettings, SessionLedger, accounting_for, breakdown
from core.telemetry.sampler import Sample

S = 1_000_000_000


def _metrics(**kw: float) -> RequestMetrics:
    base = dict(template_ms=1.0, tokenize_ms=2.0, prefill_ms=40.0, ttft_ms=45.0,
                decode_tokens=11, decode_ms=200.0, detokenize_ms=5.0, total_ms=250.0,
                prompt_tokens=30)
    base.update(kw)
    return RequestMetrics(**base)  # type: ignore[arg-type]


def _flat(watts: float, t0: float, t1: float, label: str = "measured") -> list[Sample]:
    return [Sample(int(t * S), watts, label, watts, None, None, None)  # type: ignore[arg-type]
            for t in (t0, t1)]


def test_breakdown_phases() -> None:
    ph = {p.name: p for p in breakdown(_metrics())}
    assert ph["tokenize"].ms == 3.0
    assert ph["prefill"].ms == 42.0  # ttft - tokenize: prompt evaluation + first token
    assert ph["decode"].ms == 195.0  # decode span less the de-tokenization inside it
    assert ph["detokenize"].ms == 5.0
    assert ph["other"].ms == 5.0  # total - (ttft + decode span)
    assert sum(p.ms for p in ph.values()) == pytest.approx(250.0)
    assert ph["decode"].pct == 78.0


def test_breakdown_of_a_request_cancelled_in_prefill() -> None:
    ph = {p.name: p for p in breakdown(_metrics(ttft_ms=0.0, decode_ms=0.0, detokenize_ms=0.0,
                                                decode_tokens=0, total_ms=50.0))}
    assert ph["prefill"].ms == 40.0 and ph["decode"].ms == 0.0 and ph["other"].ms == 7.0


def test_cost_lines_and_custom_prices() -> None:
    # 100 W for 0.25 s = 25 J over 11 generated tokens
    acc = accounting_for(_metrics(), _flat(100.0, 0.0, 1.0), t_end_ns=S // 2,
                         prices=CostSettings(usd_per_kwh=0.30))
    assert acc.joules == pytest.approx(25.0)
    assert acc.wh == pytest.approx(25 / 3600)
    assert acc.j_per_token == pytest.approx(25 / 11)
    assert acc.cost_usd == pytest.approx(25 / 3.6e6 * 0.30)
    assert acc.usd_per_1k_tokens == pytest.approx(25 / 3.6e6 * 0.30 / 11 * 1000)
    d = acc.to_dict()
    assert d["cost"]["electricity_usd_per_kwh"] == 0.30
    assert d["cost"]["cloud_usd"] == pytest.approx(0.00011)
    assert "Cloud API" in d["cost"]["cloud_reference"]
    assert d["window_ns"] == [S // 2 - 250_000_000, S // 2]


def test_no_samples_means_no_energy_not_zero() -> None:
    acc = accounting_for(_metrics(), [], t_end_ns=S)
    d = json.loads(json.dumps(acc.to_dict()))
    assert d["energy"]["joules"] is None and d["cost"]["usd"] is None
    assert d["cost"]["usd_per_1k_tokens"] is None


def test_session_ledger_totals_and_csv(tmp_path: Path) -> None:
    ledger = SessionLedger()
    ledger.add(accounting_for(_metrics(), _flat(100.0, 0.0, 1.0), t_end_ns=S // 2))
    assert ledger.totals().label == "measured"
    ledger.add(accounting_for(_metrics(total_ms=500.0), _flat(10.0, 0.0, 2.0, "estimated"),
                              t_end_ns=S))
    tot = ledger.totals()
    assert tot.requests == 2 and tot.generated_tokens == 22
    assert tot.joules == pytest.approx(25.0 + 5.0) and tot.label == "estimated"
    assert tot.cost_usd == pytest.approx(30.0 / 3.6e6 * 0.15)
    rows = list(csv.DictReader(ledger.write_csv(tmp_path / "session.csv").open()))
    assert [r["request"] for r in rows] == ["1", "2"]
    assert float(rows[1]["joules"]) == pytest.approx(5.0)
    assert rows[1]["energy_label"] == "estimated" and float(rows[0]["decode_ms"]) == 195.0
    assert json.dumps(tot.to_dict())


def test_concurrent_requests_share_the_energy_by_engine_time() -> None:
    """Two requests batched together over one second at a flat 10 W: each is charged its
    share of the engine time, and together they add up to what the machine drew."""
    samples = _flat(10.0, 0.0, 2.0)
    a = _metrics(total_ms=1000.0, t_end_ns=1 * S, concurrent=True, engine_share_ms=600.0)
    b = _metrics(total_ms=1000.0, t_end_ns=1 * S, concurrent=True, engine_share_ms=400.0)
    alone = _metrics(total_ms=1000.0, t_end_ns=1 * S, engine_share_ms=400.0)
    ja, jb = (accounting_for(m, samples, t_end_ns=S).joules for m in (a, b))
    assert ja == pytest.approx(6.0) and jb == pytest.approx(4.0)
    assert ja + jb == pytest.approx(10.0)  # the window's energy, counted once
    assert accounting_for(alone, samples, t_end_ns=S).joules == pytest.approx(10.0)
    assert accounting_for(a, samples, t_end_ns=S).to_dict()["energy"]["share"] == 0.6
