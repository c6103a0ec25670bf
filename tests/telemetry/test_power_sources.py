"""Power sources: RAPL counters (advancing, wrapping, unreadable), NVML plumbing, the
estimate and its TDP table, and the fallback order of detect_power."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.telemetry.power.base import SourceUnavailable
from core.telemetry.power.cpu_tdp import guess_tdp
from core.telemetry.power.detect import detect_power
from core.telemetry.power.estimate import EstimatedCpuPower
from core.telemetry.power.nvml import NvmlGpus
from core.telemetry.power.rapl import RaplPower
from tests.fixtures.telemetry import RAPL_RANGE_UJ, FakeNvml, RaplTree

S = 1_000_000_000  # ns per second


def test_rapl_watts_from_advancing_counters_sum_packages_only(rapl_tree: RaplTree) -> None:
    src = RaplPower(rapl_tree.root, rapl_tree.root / "no-hwmon")
    try:
        assert src.read(10 * S) is None  # the first read primes
        # Over 0.5 s: package-0 +5 J, package-1 +3 J -> 16 W. Sub-zones (parts of a
        # package), dram and psys (which includes the packages) must not add in.
        rapl_tree.advance("intel-rapl:0", 5_000_000)
        rapl_tree.advance("intel-rapl:1", 3_000_000)
        for zone in ("intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:1:0", "intel-rapl:2"):
            rapl_tree.advance(zone, 900_000_000)
        assert src.read(10 * S + S // 2) == pytest.approx(16.0, rel=1e-9)
        # Nothing advanced: 0 W, not the previous value.
        assert src.read(11 * S) == pytest.approx(0.0)
        assert "2 package counter(s)" in src.formula and src.label == "measured"
    finally:
        src.close()


def test_rapl_counter_wrap_gives_the_right_watts(rapl_tree: RaplTree) -> None:
    rapl_tree.set("intel-rapl:0", RAPL_RANGE_UJ - 1_500_000)  # 1.5 J before the wrap
    src = RaplPower(rapl_tree.root)
    try:
        src.read(0)
        rapl_tree.advance("intel-rapl:0", 4_000_000)  # wraps: now 2_500_000
        rapl_tree.advance("intel-rapl:1", 0)
        assert rapl_tree.get("intel-rapl:0") == 2_500_000
        assert src.read(S // 4) == pytest.approx(16.0, rel=1e-9)  # 4 J in 0.25 s
    finally:
        src.close()


def test_rapl_unreadable_counter_falls_through_with_the_reason(rapl_tree: RaplTree) -> None:
    counter = rapl_tree.root / "intel-rapl:1" / "energy_uj"
    counter.unlink()
    counter.mkdir()  # unreadable even for root (reading a directory fails)
    with pytest.raises(SourceUnavailable, match="intel-rapl:1/energy_uj could not be read"):
        RaplPower(rapl_tree.root)
    setup = detect_power(use_nvml=False, rapl_root=rapl_tree.root, cpu_model="AMD Ryzen 7 5800X")
    assert setup.label == "estimated"
    assert [s.name for s in setup.sources] == ["estimate"]
    reasons = {u["name"]: u["reason"] for u in setup.unavailable}
    assert "could not be read" in reasons["rapl"] and "turned off" in reasons["nvml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_rapl_permission_denied_says_root_only(rapl_tree: RaplTree) -> None:
    (rapl_tree.root / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.raises(SourceUnavailable, match="permission denied"):
        RaplPower(rapl_tree.root)


def test_no_rapl_anywhere_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="No RAPL energy counters"):
        RaplPower(tmp_path / "powercap", tmp_path / "hwmon")


def test_amd_energy_hwmon_socket_counter(tmp_path: Path, amd_energy_hwmon: Path) -> None:
    src = RaplPower(tmp_path / "empty", amd_energy_hwmon)
    try:
        src.read(0)
        (amd_energy_hwmon / "hwmon3" / "energy17_input").write_text("7000000\n")  # +2 J
        (amd_energy_hwmon / "hwmon3" / "energy1_input").write_text("99999999\n")  # a core
        assert src.read(S // 10) == pytest.approx(20.0)
    finally:
        src.close()


def test_nvml_plumbing_energy_counter_and_power_fallback(fake_nvml: FakeNvml) -> None:
    src = NvmlGpus(fake_nvml)
    # First read: no previous energy, so both GPUs report instantaneous power.
    assert src.read(0) == pytest.approx(290.0)
    fake_nvml.gpus[0]["energy_mj"] += 30_000  # 30 J in 0.1 s on GPU 0 -> 300 W
    fake_nvml.gpus[0]["power_mw"] = 1  # ignored: the energy counter is preferred
    assert src.read(S // 10) == pytest.approx(300.0 + 40.0)
    stats = src.stats()
    assert (stats.util_pct, stats.vram_used_bytes, stats.vram_total_bytes, stats.temp_c) == (
        90, 7 << 30, 32 << 30, 71)
    fake_nvml.fail_reads = True
    assert src.read(S // 5) is None and src.last_error == "GPU is lost"
    assert src.stats().util_pct is None
    src.close()
    src.close()
    assert fake_nvml.calls.count("init") == 1 and fake_nvml.calls.count("shutdown") == 1
    assert fake_nvml.calls.count("handle0") == 1  # handles fetched once, not per read


def test_nvml_failures_become_reasons() -> None:
    with pytest.raises(SourceUnavailable, match=r"NVML could not start .*Driver Not Loaded"):
        NvmlGpus(FakeNvml([], init_error="Driver Not Loaded"))
    empty = FakeNvml([])
    with pytest.raises(SourceUnavailable, match="no NVIDIA GPU"):
        NvmlGpus(empty)
    assert empty.calls[-1] == "shutdown"


def test_detect_power_prefers_measured_sources(fake_nvml: FakeNvml, rapl_tree: RaplTree) -> None:
    setup = detect_power(nvml=fake_nvml, rapl_root=rapl_tree.root)
    try:
        assert [s.name for s in setup.sources] == ["nvml", "rapl"]
        assert setup.label == "measured" and setup.unavailable == []
        assert "nvml: measured" in setup.formula and "rapl: measured" in setup.formula
    finally:
        setup.close()


def test_this_machine_without_counters_says_estimated_with_formula(tmp_path: Path) -> None:
    """The real pynvml on this machine; RAPL pointed at an empty root. On a GPU machine
    NVML is measured instead, which the second branch checks."""
    setup = detect_power(rapl_root=tmp_path, hwmon_root=tmp_path, cpu_model="AMD EPYC")
    try:
        names = [s.name for s in setup.sources]
        if names == ["estimate"]:
            assert setup.label == "estimated"
            assert "CPU%" in setup.formula and "TDP 200 W" in setup.formula
            assert {u["name"] for u in setup.unavailable} == {"nvml", "rapl"}
        else:
            assert names == ["nvml"] and setup.label == "measured"
    finally:
        setup.close()


def test_estimate_is_cpu_share_times_tdp() -> None:
    est = EstimatedCpuPower("Intel(R) Core(TM) i7-12700H", logical_cores=8)
    assert est.tdp.watts == 45.0 and est.label == "estimated"
    assert est.read(0, 200.0) == pytest.approx(200 / 800 * 45.0)
    assert est.read(0, 5000.0) == pytest.approx(45.0)  # never more than the whole CPU
    assert est.read(0, None) is None
    mine = EstimatedCpuPower("Intel(R) Core(TM) i7-12700H", tdp_w=30, logical_cores=4)
    assert mine.read(0, 100.0) == pytest.approx(7.5) and "your setting" in mine.formula


@pytest.mark.parametrize(("model", "watts"), [
    ("AMD EPYC 7763 64-Core Processor", 200.0),
    ("AMD Ryzen 7 7840U w/ Radeon 780M Graphics", 15.0),
    ("AMD Ryzen 9 7945HX with Radeon Graphics", 45.0),
    ("AMD Ryzen 5 5600X 6-Core Processor", 65.0),
    ("Intel(R) Core(TM) i9-13900K", 125.0),
    ("Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", 28.0),
    ("Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", 15.0),
    ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 150.0),
    ("Apple M2", 20.0),
    ("Something Else", 65.0),
])
def test_tdp_table_by_family(model: str, watts: float) -> None:
    assert guess_tdp(model).watts == watts
