"""Keep-alive: a model idle for longer than its keep-alive unloads, and its worker's memory
is returned (the process is gone and its RSS is no longer counted anywhere)."""

from __future__ import annotations

import time

import psutil

from core.engine.pool import EnginePool
from tests.pool.conftest import Models, ask, final


def test_keep_alive_expiry_unloads_and_returns_the_memory(pool: EnginePool,
                                                          models: Models) -> None:
    pool.set_budget(models.both)
    final(ask(pool, models.q4, "Hi"))
    pool.unload(models.q8)
    row = next(r for r in pool.resident() if r.name == models.q4.model_path.name)
    pid, rss = row.worker_pid, row.rss_bytes
    assert pid and rss and rss > 100 << 20  # the weights are really in that process
    assert row.expires_in_s is not None and row.expires_in_s > 60  # the pool's default

    t0 = time.monotonic()
    final(ask(pool, models.q4, "Hi", keep_alive_s=0.5))  # this request shortens it
    while psutil.pid_exists(pid) and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    assert not psutil.pid_exists(pid)
    assert pool.resident() == [] and pool.worker_pids() == {}
    counted = sum(r.rss_bytes or 0 for r in pool.models())
    assert counted == 0
    unload = [e for e in pool.history if e.kind == "unload"][-1]
    assert unload.reason == "keep-alive expired"
