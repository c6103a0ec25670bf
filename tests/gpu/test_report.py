"""Goals judged, results written as JSON and as a readable table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.gpu.report import (
    CheckResult,
    Report,
    power_goal,
    ratio_goal,
    render_markdown,
    scaling_goal,
    within_goal,
    write,
)


@pytest.mark.parametrize(("hearth", "ref", "status"), [
    (96.0, 100.0, "met"), (95.0, 100.0, "met"), (94.9, 100.0, "not met"), (5.0, 0.0, "error")])
def test_speed_goal_is_a_floor_on_the_ratio(hearth: float, ref: float, status: str) -> None:
    assert ratio_goal(hearth, ref, 0.95)[0] == status


@pytest.mark.parametrize(("predicted", "measured", "status", "error"), [
    (1049, 1000, "met", 0.049), (949, 1000, "not met", -0.051), (1000, 0, "error", None)])
def test_vram_goal_is_plus_minus_five_percent(predicted: int, measured: int, status: str,
                                             error: float | None) -> None:
    got, err = within_goal(predicted, measured, 0.05)
    assert got == status
    if error is not None:
        assert err == pytest.approx(error, abs=1e-9)


def test_power_is_judged_against_idle_and_the_board_limit() -> None:
    assert power_goal(310.0, 90.0, 700.0, 0.25, 40) == ("met", "")
    status, why = power_goal(80.0, 95.0, 700.0, 0.1, 40)
    assert status == "not met" and "below idle" in why
    status, why = power_goal(900.0, 90.0, 700.0, 0.5, 40)
    assert status == "not met" and "above the board's limit" in why
    status, why = power_goal(300.0, 90.0, None, None, 40)
    assert status == "not met" and "J/token" in why
    assert power_goal(None, 90.0, 700.0, 0.2, 0)[0] == "not met"
    assert "2 power sample" in power_goal(300.0, 90.0, 700.0, 0.2, 2)[1]


def test_scaling_goal_is_the_seeds_three_times_at_eight() -> None:
    assert scaling_goal({1: 100.0, 8: 320.0}) == ("met", 3.2)
    assert scaling_goal({1: 100.0, 8: 250.0})[0] == "not met"
    assert scaling_goal({8: 250.0})[0] == "error"


def _report() -> Report:
    return Report(
        machine={"gpus": [{"name": "NVIDIA H200", "compute_cap": "9.0"}], "cpu_cores": 16,
                 "cuda": "13.0"},
        build={"summary": "llama-cpp-python 0.3.36, sm_90"},
        phases=[{"name": "build", "estimate_s": 282, "seconds": 301.5}],
        checks=[
            CheckResult("offload-decode", "decode tg128", "≥ 0.95× llama-bench", "met",
                        figure="0.97×", rows=[{"side": "Hearth", "mean tok/s": 612.25}]),
            CheckResult("vram", "VRAM", "±5%", "not met", figure="worst +7.2%",
                        reason="implied CUDA context 512 MiB | off"),
            CheckResult("batched", "batched", "≥ 3× at 8", "unavailable",
                        reason="not available in this build"),
        ])


def test_failing_checks_and_summary() -> None:
    rep = _report()
    assert [c.name for c in rep.failing] == ["vram"]
    assert rep.summary() == {"met": 1, "not met": 1, "unavailable": 1}
    rep.checks.append(CheckResult("power", "power", "", "error", reason="NVML"))
    assert [c.name for c in rep.failing] == ["vram", "power"]


def test_json_and_table_side_by_side(tmp_path: Path) -> None:
    js, md = write(_report(), tmp_path, stamp="20261201-120000")
    assert (js.name, md.name) == ("gpu-check-20261201-120000.json",
                                  "gpu-check-20261201-120000.md")
    data = json.loads(js.read_text())
    assert data["schema"] == 1 and data["summary"]["not met"] == 1
    again = [CheckResult.from_dict(c) for c in data["checks"]]
    assert again == _report().checks
    table = md.read_text()
    assert "NVIDIA H200 (sm_90)" in table
    assert "| decode tg128 | 0.97× | ≥ 0.95× llama-bench | met |" in table
    assert "implied CUDA context 512 MiB \\| off" in table  # a pipe cannot break the row
    assert "| build | 282 | 301.5 |" in table
    assert "## decode tg128" in table and "| Hearth | 612.2 |" in table


def test_table_of_a_report_without_gpu_or_phases() -> None:
    text = render_markdown(Report())
    assert "Machine: no GPU" in text and "Phases" not in text
