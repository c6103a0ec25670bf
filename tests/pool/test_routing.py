"""Requests name their model: interleaved requests to two real models, each answered by its
own; a shorter context reuses the loaded worker and only a larger one reloads; ids, the
catalog and unknown models."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import pytest

from core.engine import GenerationRequest, SamplingParams
from core.engine.pool import EnginePool, UnknownModelError
from core.paths import models_dir
from tests.pool.conftest import Models, ask, errors, final, logprobs

PROMPTS = ["The capital of France is", "Water boils at"]


def test_interleaved_requests_are_answered_by_their_own_model(pool: EnginePool,
                                                              models: Models) -> None:
    pool.set_budget(models.both)
    alone = {(m, p): ask(pool, cfg, p) for p in PROMPTS
             for m, cfg in (("q4", models.q4), ("q8", models.q8))}
    loads = pool.loads()
    # The two files give measurably different log-probabilities: an answer from the
    # wrong model cannot pass for the right one.
    gap = max(abs(a - b) for a, b in zip(logprobs(alone["q4", PROMPTS[0]]),
                                         logprobs(alone["q8", PROMPTS[0]]), strict=True))
    assert gap > 1e-3

    results: dict[tuple[str, str, int], list] = {}

    def client(name: str, cfg: object) -> None:
        for round_ in range(2):
            for p in PROMPTS:
                results[name, p, round_] = ask(pool, cfg, p)

    threads = [threading.Thread(target=client, args=("q4", models.q4)),
               threading.Thread(target=client, args=("q8", models.q8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 8
    for (name, p, _), events in results.items():
        assert final(events).text == final(alone[name, p]).text
        assert logprobs(events) == pytest.approx(logprobs(alone[name, p]), abs=1e-4)
    assert pool.loads() == loads  # both stayed resident: no swap at all
    assert {r.name for r in pool.resident()} == {models.q4.model_path.name,
                                                 models.q8.model_path.name}


def test_shorter_context_reuses_and_only_a_larger_one_reloads(pool: EnginePool,
                                                              models: Models) -> None:
    pool.set_budget(models.both)
    final(ask(pool, models.q4, "Hello"))
    pid = pool.backend_for(models.q4).worker_pid
    loads = pool.loads(models.q4.model_path)
    shorter = replace(models.q4, n_ctx=256)
    final(ask(pool, shorter, "Hello"))
    assert pool.loads(models.q4.model_path) == loads
    assert pool.backend_for(shorter).worker_pid == pid  # the same worker served it

    larger = replace(models.q4, n_ctx=2 * models.q4.n_ctx)
    final(ask(pool, larger, "Hello"))
    assert pool.loads(models.q4.model_path) == loads + 1
    # Reloaded in place: the same process freed the small context and made the larger
    # one; the model is never resident twice.
    assert pool.backend_for(larger).worker_pid == pid
    rows = [r for r in pool.resident() if r.name == models.q4.model_path.name]
    assert len(rows) == 1 and rows[0].n_ctx == larger.n_ctx
    final(ask(pool, models.q4, "Hello"))  # the original size again: no reload back down
    assert pool.loads(models.q4.model_path) == loads + 1


def test_catalog_lists_every_runnable_model_with_state(pool: EnginePool,
                                                       models: Models) -> None:
    pool.set_budget(models.both)
    final(ask(pool, models.q8, "Hi"))
    os.symlink(models.q8.model_path, models_dir() / models.q8.model_path.name)  # dropped in
    rows = {r.id: r for r in pool.models()}
    q4_id, q8_id = "gemma-3-270m-q4_k_m", "gemma-3-270m-q8_0-from-q4_k_m"
    assert {q4_id, q8_id} <= rows.keys()
    assert rows[q8_id].state == "loaded" and rows[q8_id].in_flight == 0
    assert rows[q8_id].worker_pid and rows[q8_id].rss_bytes and rows[q8_id].host_bytes > 0
    assert rows[q4_id].source == "default" and rows[q4_id].quant == "Q4_K_M"
    loads = pool.loads()
    backend = pool.backend_for(q8_id)  # by id, as the API names it: the resident worker
    assert backend.loaded is not None
    request = GenerationRequest(prompt="Hi", max_tokens=3, sampling=SamplingParams.greedy())
    assert final(list(backend.generate(request))).text
    assert pool.loads() == loads


def test_unknown_model_is_one_clear_error(pool: EnginePool) -> None:
    with pytest.raises(UnknownModelError, match="no-such-model"):
        pool.backend_for("no-such-model")
    events = ask(pool, "no-such-model", "Hi")
    assert len(events) == 1 and errors(events)[0].kind == "UnknownModelError"
    assert "hearth-cli models" in errors(events)[0].message
