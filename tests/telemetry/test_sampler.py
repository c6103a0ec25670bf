"""The sampling thread: rate, clean stop, the worker's RSS/CPU by pid, GPU fields, windows."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import pytest

from core.telemetry.power.base import PowerSetup
from core.telemetry.power.estimate import EstimatedCpuPower
from core.telemetry.power.nvml import NvmlGpus
from core.telemetry.sampler import Sample, TelemetrySampler
from tests.fixtures.telemetry import FakeNvml


def _estimate_setup(tdp_w: float = 100.0, cores: int = 2) -> PowerSetup:
    return PowerSetup([EstimatedCpuPower("test CPU", tdp_w, cores)])


def test_runs_at_its_rate_and_stops_cleanly() -> None:
    sampler = TelemetrySampler(hz=10, power=_estimate_setup())
    with sampler:
        time.sleep(0.65)
        thread = sampler._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()
    samples = sampler.samples()
    # one at start, then every 100 ms: 7 in 0.65 s (slack for a loaded 2-core machine)
    assert 4 <= len(samples) <= 8
    gaps = [(b.t_ns - a.t_ns) / 1e6 for a, b in itertools.pairwise(samples)]
    assert all(50 <= g <= 400 for g in gaps[1:]), gaps
    n = len(sampler.samples())
    time.sleep(0.25)
    assert len(sampler.samples()) == n  # nothing after close


def test_ring_buffer_keeps_only_the_history() -> None:
    sampler = TelemetrySampler(hz=10, power=_estimate_setup(), history_s=0.5)
    for _ in range(12):
        sampler.sample_now()
    kept = sampler.samples()
    assert len(kept) == 5 and kept == sorted(kept, key=lambda s: s.t_ns)


def test_worker_cpu_and_rss_by_pid_and_the_estimate_from_them() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = TelemetrySampler(hz=10, power=_estimate_setup(tdp_w=100.0, cores=2),
                                   pid=busy.pid)
        time.sleep(0.5)
        s = sampler.sample_now()
        assert s.rss_bytes is not None and s.rss_bytes > 1 << 20
        assert s.cpu_percent is not None and s.cpu_percent > 20  # busy, on a shared machine
        assert s.label == "estimated" and s.gpu_w is None and s.gpu_util_pct is None
        # The estimate is exactly its formula applied to the sampled CPU%.
        assert s.cpu_w == pytest.approx(min(1.0, s.cpu_percent / 200.0) * 100.0)
        assert s.power_w == s.cpu_w
    finally:
        busy.kill()
        busy.wait()
    gone = sampler.sample_now()
    assert (gone.cpu_percent, gone.rss_bytes, gone.power_w) == (None, None, None)
    sampler.set_pid(None)
    assert sampler.sample_now().rss_bytes is None


def test_gpu_fields_from_nvml(fake_nvml: FakeNvml) -> None:
    power = PowerSetup([NvmlGpus(fake_nvml)])
    with TelemetrySampler(hz=10, power=power) as sampler:
        s = sampler.sample_now()
        first = sampler.samples()[0]
    # The first read is instantaneous power (250 + 40 W); later GPU 0 is Δenergy/Δt, and
    # its counter did not move, so only GPU 1's 40 W remain.
    assert first.gpu_w == pytest.approx(290.0) and s.gpu_w == pytest.approx(40.0)
    assert s.label == "measured" and s.power_w == s.gpu_w and s.cpu_w is None
    assert (s.gpu_util_pct, s.vram_used_bytes, s.gpu_temp_c) == (90, 7 << 30, 71)
    assert "shutdown" not in fake_nvml.calls  # the caller's sources stay open...
    power.close()
    assert "shutdown" in fake_nvml.calls  # ...until the caller closes them


def test_window_has_one_sample_either_side() -> None:
    sampler = TelemetrySampler(hz=10, power=_estimate_setup())
    taken = [sampler.sample_now() for _ in range(6)]
    win = sampler.window(taken[2].t_ns + 1, taken[3].t_ns + 1)
    assert win == taken[2:5]
    # A window ending after the newest sample makes the sampler take one now.
    end = time.perf_counter_ns()
    win = sampler.window(taken[4].t_ns, end)
    assert win[-1].t_ns >= end and len(sampler.samples()) == 7


def test_sample_is_json_ready() -> None:
    s = Sample(1, 2.0, "estimated", 2.0, None, 50.0, 10)
    assert s.to_dict()["power_w"] == 2.0 and s.to_dict()["label"] == "estimated"
