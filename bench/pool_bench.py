"""Two models, one budget: what a swap costs a request, against loading the model plainly.

The two models are the bundled Gemma 3 270M Q4_K_M and its Q8_0 variant (the tests'
fixture files), each at n_ctx 512, validated and warmed up as the app loads them. Requests
(greedy, 8 tokens) go through the pool — the path the app and the server take.

* **plain load**: a fresh ``EngineClient`` loads the model (process start, validation, load,
  warm-up), ``--reps`` times each: what opening that model costs in a fresh Hearth.
* **one-model budget** (room for either, not both): requests alternate A, B, A, B, so every
  request needs the other model out and its own in. A request's *time lost to swapping* is
  its wall time less the engine's own time for it (``RequestMetrics.total_ms``, measured in
  the same request, so the machine's load moves both alike); the ratio is that against the
  incoming model's plain load, measured before and after (goal ≤ 1.0×: a swap costs no more
  than the load itself). No thrash: exactly one load per switch, none wasted.
* **two clients at once** under the same budget, each with one request outstanding (it
  sends the next when the last is answered): the fair-turn rule gives each turn to the
  waiting model as soon as the other's requests end, so this is the worst case — one load
  per request — reported as measured.
* **budget for both**: the same alternation; goal: no swap at all (two loads in all).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine_bench import Row
from core.engine import DoneEvent, EngineConfig, GenerationRequest, SamplingParams
from core.engine.pool import EnginePool, MemoryBudget, predict_cost
from core.engine.process.client import EngineClient

N_CTX, N_TOKENS = 512, 8


@dataclass
class Phase:
    """One budget's run: per-request wall seconds, and what the pool loaded."""

    walls: list[tuple[str, float]] = field(default_factory=list)
    loads: int = 0
    requests: int = 0
    handoffs: int = 0


def _configs(paths: dict[str, Path]) -> dict[str, EngineConfig]:
    return {name: EngineConfig(model_path=p, n_ctx=N_CTX) for name, p in paths.items()}


def plain_loads(configs: dict[str, EngineConfig], reps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(reps):
        for name, cfg in configs.items():
            client = EngineClient()
            t0 = time.perf_counter()
            client.load(cfg)
            out[name].append(time.perf_counter() - t0)
            client.close()
    return out


def _ask(pool: EnginePool, cfg: EngineConfig, prompt: str) -> float:
    """Seconds the request spent outside the engine's own work on it (waiting, loading)."""
    request = GenerationRequest(prompt=prompt, max_tokens=N_TOKENS, ignore_eos=True,
                                sampling=SamplingParams.greedy(), reuse_cache=False)
    t0 = time.perf_counter()
    *_, final = pool.generate(request, cfg)
    wall = time.perf_counter() - t0
    if not isinstance(final, DoneEvent):
        raise RuntimeError(f"a request failed under the pool: {final}")
    return wall - final.metrics.total_ms / 1000


def alternate(configs: dict[str, EngineConfig], budget: MemoryBudget, rounds: int) -> Phase:
    """A, B, A, B … sequentially; the first request of each model is its cold load."""
    phase = Phase()
    with EnginePool(budget=budget) as pool:
        for _ in range(rounds):
            for name, cfg in configs.items():
                phase.walls.append((name, _ask(pool, cfg, "The capital of France is")))
        phase.loads, phase.requests = pool.loads(), len(phase.walls)
        phase.handoffs = sum("worker process loads it" in e.reason for e in pool.history)
    return phase


def concurrent(configs: dict[str, EngineConfig], budget: MemoryBudget, each: int) -> Phase:
    phase = Phase()
    with EnginePool(budget=budget) as pool:
        def client(name: str, cfg: EngineConfig) -> None:
            for _ in range(each):
                phase.walls.append((name, _ask(pool, cfg, "Water boils at")))

        threads = [threading.Thread(target=client, args=item) for item in configs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        phase.loads, phase.requests = pool.loads(), len(phase.walls)
    return phase


def main(rounds: int = 4, reps: int = 2) -> tuple[list[Row], dict[str, object]]:
    from tests.fixtures.variants import make_variants

    configs = _configs({"Q4_K_M": make_variants(types=("Q4_K_M",))["Q4_K_M"],
                        "Q8_0": make_variants(types=("Q8_0",))["Q8_0"]})
    costs = {n: predict_cost(c, False) for n, c in configs.items()}
    one = MemoryBudget(int(max(c.host_bytes for c in costs.values()) * 1.15))
    both = MemoryBudget(2 * sum(c.host_bytes for c in costs.values()))
    load_avg = os.getloadavg()
    plain = plain_loads(configs, reps)
    resident = alternate(configs, both, rounds)
    swapping = alternate(configs, one, rounds)
    together = concurrent(configs, one, rounds)
    for name, more in plain_loads(configs, reps).items():
        plain[name] += more
    warm = {n: statistics.median(w for m, w in resident.walls[2:] if m == n) for n in configs}
    lost = [w for _, w in swapping.walls[2:]]  # every request after the first two swaps
    incoming = [statistics.mean(plain[n]) for n, _ in swapping.walls[2:]]
    rows = [Row("swap: time lost per request (s)", lost, incoming, "plain load of it")]
    setup = {
        "load_average": [round(x, 2) for x in load_avg],
        "plain_load_s": {n: [round(x, 3) for x in v] for n, v in plain.items()},
        "resident_s": warm,
        "one_model_budget": {"requests": swapping.requests, "loads": swapping.loads,
                             "switches": swapping.requests,
                             "worker_handoffs": swapping.handoffs},
        "two_clients_one_budget": {"requests": together.requests, "loads": together.loads},
        "both_budget": {"requests": resident.requests, "loads": resident.loads,
                        "swaps": resident.loads - len(configs)},
        "budgets_bytes": {"one": one.host_bytes, "both": both.host_bytes},
    }
    return rows, setup


def print_summary(setup: dict) -> None:
    one, two = setup["one_model_budget"], setup["two_clients_one_budget"]
    both = setup["both_budget"]
    print(f"  one-model budget, alternating: {one['loads']} loads for {one['requests']} "
          "requests (goal: one per switch, no thrash)")
    print(f"  one-model budget, two clients at once: {two['loads']} loads for "
          f"{two['requests']} requests (turns batch them)")
    print(f"  budget for both: {both['swaps']} swaps in {both['requests']} requests (goal: 0)")
    print(f"  plain loads (s): {setup['plain_load_s']}; time outside the engine with the "
          f"model resident (s): { {k: round(v, 3) for k, v in setup['resident_s'].items()} }")
    print(f"  load average at the start: {setup['load_average']}")
