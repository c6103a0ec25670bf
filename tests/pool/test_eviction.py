"""A budget that holds one model: the idle one is evicted (least recently used first), a
model with work in flight is never killed, the waiting request is told its place, and the
two models take turns. No request fails because of another."""

from __future__ import annotations

import threading
import time

import psutil

from core.engine import DoneEvent, GenerationRequest, TextEvent
from core.engine.pool import EnginePool, Waiting
from tests.pool.conftest import GREEDY, Models, ask, errors, final

LONG_TOKENS = 48


def test_idle_model_is_evicted_to_make_room(pool: EnginePool, models: Models) -> None:
    pool.set_budget(models.both)
    final(ask(pool, models.q4, "Hi"))
    final(ask(pool, models.q8, "Hi"))
    pool.set_budget(models.one)  # nothing leaves until a load needs the room
    assert len(pool.resident()) == 2
    pool.unload(models.q8)
    q4_row = pool.resident()[0]
    q4_pid, q4_rss = q4_row.worker_pid, q4_row.rss_bytes
    assert q4_pid and q4_rss
    loads = pool.loads(models.q8.model_path)

    events = ask(pool, models.q8, "The capital of France is")
    assert not errors(events) and final(events).text
    assert pool.loads(models.q8.model_path) == loads + 1
    [row] = pool.resident()
    assert row.name == models.q8.model_path.name
    # The idle worker's process was handed over: it freed Q4_K_M, then loaded Q8_0 (no
    # process start, and never both in memory).
    assert row.worker_pid == q4_pid
    assert row.rss_bytes < q4_rss + models.q8.model_path.stat().st_size // 2
    unload = [e for e in pool.history if e.kind == "unload"][-1]
    assert unload.path.endswith(models.q4.model_path.name)
    assert "making room" in unload.reason


def _turn_over(pool: EnginePool, models: Models) -> None:
    deadline = time.monotonic() + 60
    while any(r.turn_left_s > 0 for r in pool.resident()) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_busy_model_is_never_evicted_and_the_models_take_turns(pool: EnginePool,
                                                               models: Models) -> None:
    pool.set_budget(models.one)
    final(ask(pool, models.q8, "Hi"))  # q8 resident (and only it: one fits)
    _turn_over(pool, models)  # (a model just loaded keeps its turn a while: see below)
    q8_pid = pool.backend_for(models.q8).worker_pid
    start = len(pool.history)
    streaming = threading.Event()
    done: dict[str, object] = {}
    order: list[str] = []
    told: dict[str, list[Waiting]] = {"q4": [], "q8 again": []}

    def long_q8() -> None:
        request = GenerationRequest(prompt="Once upon a time", max_tokens=LONG_TOKENS,
                                    sampling=GREEDY, ignore_eos=True)
        events = []
        for event in pool.generate(request, models.q8):
            events.append(event)
            if isinstance(event, TextEvent):
                streaming.set()
        done["q8 long"] = events
        order.append("q8 long")

    def then(name: str, cfg: object) -> None:
        done[name] = ask(pool, cfg, "Water boils at", on_wait=told[name].append)
        order.append(name)

    first = threading.Thread(target=long_q8)
    first.start()
    assert streaming.wait(60)
    q4 = threading.Thread(target=then, args=("q4", models.q4))
    q4.start()
    deadline = time.monotonic() + 30
    while not told["q4"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert told["q4"] and told["q4"][0].position == 1
    assert "finish" in told["q4"][0].reason and models.q8.model_path.name in told["q4"][0].reason
    assert psutil.pid_exists(q8_pid)  # still serving: not killed to make room
    again = threading.Thread(target=then, args=("q8 again", models.q8))
    again.start()  # q8 is draining now: this queues behind the q4 request (a fair turn)
    for t in (first, q4, again):
        t.join(180)

    long_final = done["q8 long"][-1]  # type: ignore[index]
    assert isinstance(long_final, DoneEvent) and long_final.finish_reason == "length"
    assert long_final.metrics.decode_tokens == LONG_TOKENS  # it ran to the end
    assert not any(errors(events) for events in done.values())  # type: ignore[arg-type]
    assert order == ["q8 long", "q4", "q8 again"]
    assert told["q8 again"] and told["q8 again"][0].position == 2
    # One load per turn, nothing more: q8 -> q4 -> q8 (each in the drained process).
    assert [e.path.rsplit("/", 1)[-1] for e in pool.history[start:] if e.kind == "load"] == [
        models.q4.model_path.name, models.q8.model_path.name]
    assert pool.backend_for(models.q8).worker_pid == q8_pid


def test_two_busy_clients_take_turns_of_several_requests(pool: EnginePool,
                                                        models: Models) -> None:
    """Each client sends its next request as soon as the last is answered. A model keeps
    its turn, while in use, for as long as its load took: so turns hold several requests
    and loads are fewer than requests (per-request swapping would be thrash)."""
    pool.set_budget(models.one)
    final(ask(pool, models.q8, "Hi"))
    start = pool.loads()
    answered: list[list] = []

    def client(cfg: object) -> None:
        for _ in range(4):
            answered.append(ask(pool, cfg, "Water boils at", max_tokens=4))

    threads = [threading.Thread(target=client, args=(cfg,)) for cfg in (models.q4, models.q8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(answered) == 8 and not any(errors(events) for events in answered)
    assert 1 <= pool.loads() - start < 8
