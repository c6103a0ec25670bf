"""Telemetry follows every worker of the pool: one sampler watches all their pids, reads
the power once per tick from their CPU together, and shares the energy out by CPU."""

from __future__ import annotations

import threading

import pytest

from core.engine.pool import EnginePool
from core.telemetry.power.base import PowerSetup
from core.telemetry.power.estimate import EstimatedCpuPower
from core.telemetry.sampler import TelemetrySampler
from tests.pool.conftest import Models, ask, final

TDP_W = 100.0


def test_one_sampler_follows_every_worker(pool: EnginePool, models: Models) -> None:
    pool.set_budget(models.both)
    final(ask(pool, models.q4, "Hi"))
    final(ask(pool, models.q8, "Hi"))
    pids = pool.worker_pids()
    assert len(pids) == 2
    estimate = EstimatedCpuPower("test CPU", tdp_w=TDP_W)
    with TelemetrySampler(hz=20, power=PowerSetup([estimate]), pid=None) as sampler:
        sampler.set_pids(pids)
        t0 = sampler.sample_now().t_ns
        threads = [threading.Thread(target=ask, args=(pool, cfg, "Once upon a time"),
                                    kwargs={"max_tokens": 24}) for cfg in (models.q4, models.q8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        last = sampler.sample_now()
    seen = {p.pid for p in last.procs}  # the workers, and this process (the main pid)
    assert seen == {*pids, sampler.pid}
    assert all(p.rss_bytes and p.rss_bytes > 100 << 20 for p in last.procs if p.pid in pids)
    busy = [s for s in sampler.samples(t0) if sum(p.cpu_percent or 0 for p in s.procs) > 0]
    assert busy
    s = busy[-1]  # the power estimate took both workers' CPU together
    total = sum(p.cpu_percent or 0 for p in s.procs)
    assert s.power_w == pytest.approx(min(1.0, total / (100 * estimate.cores)) * TDP_W)
    energy = {pid: sampler.process_energy_j(pid, t0) for pid in seen}
    assert all(energy[pid] for pid in pids), energy  # each worker drew its share
    window = sum((a.power_w + b.power_w) / 2 * (b.t_ns - a.t_ns) / 1e9
                 for a, b in zip(sampler.samples(t0), sampler.samples(t0)[1:], strict=False)
                 if sum(p.cpu_percent or 0 for p in b.procs) > 0)
    assert sum(energy.values()) == pytest.approx(window, rel=1e-6)  # nothing counted twice
