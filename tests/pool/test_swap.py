"""One client alternating two models, a request at a time, under a budget that holds one:
each request swaps at once (no wait for the other model's turn, which only holds against
requests that were already waiting), in the victim's own worker process (no process start),
with exactly one load per switch."""

from __future__ import annotations

from core.engine.pool import EnginePool, Waiting
from tests.pool.conftest import Models, ask, errors, final


def test_alternating_requests_swap_at_once_in_the_victims_process(pool: EnginePool,
                                                                 models: Models) -> None:
    pool.set_budget(models.one)
    pool.unload(models.q8)  # (earlier tests may have left both resident)
    final(ask(pool, models.q4, "Hi", max_tokens=1))
    assert len(pool.resident()) == 1
    pid = pool.backend_for(models.q4).worker_pid
    assert pid
    start = len(pool.history)
    told: list[Waiting] = []
    in_turn = 0
    for cfg in (models.q8, models.q4, models.q8):
        # The model that leaves was loaded moments ago: it is still within its turn (as
        # long as its load took) and was answered less than the turn's grace ago.
        in_turn += any(r.turn_left_s > 0 for r in pool.resident())
        events = ask(pool, cfg, "Hi", max_tokens=1, on_wait=told.append)
        assert not errors(events) and final(events).text
        [row] = pool.resident()
        assert row.name == cfg.model_path.name and row.worker_pid == pid  # the same process
    assert in_turn >= 1  # (so the case below was really met)
    assert told and not [w.reason for w in told if "turn" in w.reason]
    loads = [e.path.rsplit("/", 1)[-1] for e in pool.history[start:] if e.kind == "load"]
    assert loads == [models.q8.model_path.name, models.q4.model_path.name,
                     models.q8.model_path.name]  # one load per switch, none wasted
