"""Two models, one budget: what a swap costs a request, against loading the model plainly.

The two models are the bundled Gemma 3 270M Q4_K_M and its Q8_0 variant (the tests'
fixture files), each at n_ctx 512, validated and warmed up as the app loads them. Every
request (greedy, one token: the swap is over when it comes; no cache reuse) goes through
an :class:`EnginePool`, the path the app and the server take, and is timed the same way
on both sides: the wall time from ``generate()`` to its DoneEvent (its *latency*).

* **plain load** of model M: a fresh pool (a fresh Hearth: no worker process yet) gets a
  request for M, then the same request again with M resident. Its cost is the first
  latency less the second: process start, validation, load, warm-up, and whatever the
  first request after a load pays.
* **swap** to model M, under a budget that holds either model but not both, in one pool
  kept for the whole run: the other model is resident and idle; a request for M has to
  free it and load M (in the victim's worker process: the pool hands it over), then the
  same request again with M resident. The time the swap lost is the first latency less
  the second, so the machine's load at that moment moves both alike.

Each round takes one plain load and one swap of each model, interleaved, after a warm-up
round that is not counted (page cache, first-time imports, the first loads of the swap
pool, which have no victim): the same number of samples on both sides, compared by their
medians (goal ≤ 1.0×: a swap costs no more than opening the model). Each round is printed.
No thrash: exactly one load per switch. Then, under the same one-model budget, **two clients
at once**, each with one request outstanding: the fair-turn rule batches requests into
turns, reported as loads per request; and **a budget for both**: alternating requests,
goal no swap at all (two loads in all).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from bench.engine_bench import Row
from core.engine import DoneEvent, EngineConfig, GenerationRequest, SamplingParams
from core.engine.pool import EnginePool, MemoryBudget, predict_cost

N_CTX, N_TOKENS = 512, 1
PROMPT = "The capital of France is"


class MedianRow(Row):
    """A row compared by medians: loads on a shared machine have long tails."""

    @property
    def ratio(self) -> float:
        return statistics.median(self.hearth) / statistics.median(self.reference)


@dataclass
class Sample:
    """One first request that needed a load, and the same request with the model resident.
    ``load_s`` is the pool's own timing of the worker's load call (for a swap: freeing the
    victim and loading; for a plain load: starting the process and loading); ``in_worker_s``
    the load inside the worker process (validation, llama.cpp's load, warm-up)."""

    kind: str  # "plain" | "swap"
    model: str
    round: int
    first_s: float
    resident_s: float
    load_s: float
    in_worker_s: float
    worker_pid: int
    first_cpu_s: float = 0.0  # CPU seconds of this process and the pool's workers
    resident_cpu_s: float = 0.0

    @property
    def lost_s(self) -> float:
        return self.first_s - self.resident_s

    @property
    def lost_cpu_s(self) -> float:
        return self.first_cpu_s - self.resident_cpu_s


@dataclass
class Phase:
    """A run under one budget: what the pool loaded for how many requests."""

    requests: int = 0
    loads: int = 0
    handoffs: int = 0
    worker_pids: set[int] = field(default_factory=set)


def _configs(paths: dict[str, Path]) -> dict[str, EngineConfig]:
    return {name: EngineConfig(model_path=p, n_ctx=N_CTX) for name, p in paths.items()}


def _cpu(pool: EnginePool) -> dict[int, float]:
    """CPU seconds so far of this process (every thread) and of each worker of ``pool``
    (a worker started meanwhile counts from its start: the process start is a load's)."""
    out = {0: time.process_time()}
    for row in pool.resident():
        if row.worker_pid:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(row.worker_pid).cpu_times()
                out[row.worker_pid] = times.user + times.system
    return out


def _latency(pool: EnginePool, cfg: EngineConfig, prompt: str = PROMPT
             ) -> tuple[float, float]:
    """Wall seconds from ``generate()`` to the request's DoneEvent, and the CPU seconds
    spent meanwhile by this process and the pool's workers (noise from other programs on
    the machine lengthens the first, hardly the second)."""
    request = GenerationRequest(prompt=prompt, max_tokens=N_TOKENS, ignore_eos=True,
                                sampling=SamplingParams.greedy(), reuse_cache=False)
    before = _cpu(pool)
    t0 = time.perf_counter()
    *_, final = pool.generate(request, cfg)
    wall = time.perf_counter() - t0
    after = _cpu(pool)
    if not isinstance(final, DoneEvent):
        raise RuntimeError(f"a request failed under the pool: {final}")
    return wall, sum(v - before.get(k, 0.0) for k, v in after.items())


def _measure(kind: str, pool: EnginePool, name: str, cfg: EngineConfig, rnd: int) -> Sample:
    loads = pool.loads()
    first, first_cpu = _latency(pool, cfg)
    resident, resident_cpu = _latency(pool, cfg)
    new = [e for e in pool.history if e.kind == "load"][loads:]
    if len(new) != 1:
        raise RuntimeError(f"{kind} of {name}: {len(new)} loads for one switch (thrash)")
    info = pool.info_for(cfg)
    assert info is not None
    return Sample(kind, name, rnd, first, resident, new[0].ms / 1000, info.load_ms / 1000,
                  info.worker_pid, first_cpu, resident_cpu)


def plain_load(name: str, cfg: EngineConfig, budget: MemoryBudget, rnd: int) -> Sample:
    with EnginePool(budget=budget) as pool:
        return _measure("plain", pool, name, cfg, rnd)


def _print(sample: Sample) -> None:
    print(f"  round {sample.round} {sample.kind:<5} {sample.model:<6} lost "
          f"{sample.lost_s:6.3f} s = first {sample.first_s:6.3f} - resident "
          f"{sample.resident_s:5.3f}; load call {sample.load_s:6.3f} s, in the worker "
          f"{sample.in_worker_s:6.3f} s (pid {sample.worker_pid}); CPU lost "
          f"{sample.lost_cpu_s:6.3f} s", flush=True)


def swaps_and_plain_loads(configs: dict[str, EngineConfig], one: MemoryBudget,
                          both: MemoryBudget, rounds: int, verbose: bool = True
                          ) -> tuple[list[Sample], Phase]:
    """Round 0 warms up and is dropped; then each round: a plain load of each model, then a
    swap to each (the swap pool lives across rounds, as a running Hearth does)."""
    samples: list[Sample] = []
    phase = Phase()
    with EnginePool(budget=one) as pool:
        for rnd in range(rounds + 1):
            batch = [plain_load(n, c, both, rnd) for n, c in configs.items()]
            batch += [_measure("swap", pool, n, c, rnd) for n, c in configs.items()]
            for sample in batch:
                if verbose:
                    _print(sample)
            if rnd > 0:
                samples += batch
        swaps = [s for s in samples if s.kind == "swap"]
        phase.requests = 2 * len(swaps)
        phase.loads = len(swaps)
        phase.handoffs = sum("worker process loads it" in e.reason for e in pool.history)
        phase.worker_pids = {s.worker_pid for s in swaps}
    return samples, phase


def alternate(configs: dict[str, EngineConfig], budget: MemoryBudget, rounds: int) -> Phase:
    """A, B, A, B … sequentially (the budget for both: no swaps expected)."""
    phase = Phase()
    with EnginePool(budget=budget) as pool:
        for _ in range(rounds):
            for cfg in configs.values():
                _latency(pool, cfg)
                phase.requests += 1
        phase.loads = pool.loads()
    return phase


def concurrent(configs: dict[str, EngineConfig], budget: MemoryBudget, each: int) -> Phase:
    phase = Phase()
    with EnginePool(budget=budget) as pool:
        def client(cfg: EngineConfig) -> None:
            for _ in range(each):
                _latency(pool, cfg, "Water boils at")
                phase.requests += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in configs.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        phase.loads = pool.loads()
    return phase


def _median(samples: list[Sample], kind: str, attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples if s.kind == kind)


def main(rounds: int = 4, verbose: bool = True) -> tuple[list[Row], dict[str, object]]:
    """``rounds`` counted rounds, each a plain load and a swap of each model."""
    from tests.fixtures.variants import make_variants

    configs = _configs({"Q4_K_M": make_variants(types=("Q4_K_M",))["Q4_K_M"],
                        "Q8_0": make_variants(types=("Q8_0",))["Q8_0"]})
    costs = {n: predict_cost(c, False) for n, c in configs.items()}
    one = MemoryBudget(int(max(c.host_bytes for c in costs.values()) * 1.15))
    both = MemoryBudget(2 * sum(c.host_bytes for c in costs.values()))
    load_avg = os.getloadavg()
    samples, swapping = swaps_and_plain_loads(configs, one, both, rounds, verbose)
    resident = alternate(configs, both, rounds)
    together = concurrent(configs, one, rounds)
    swaps = [s for s in samples if s.kind == "swap"]
    plains = [s for s in samples if s.kind == "plain"]  # the same (round, model) order
    rows: list[Row] = [
        MedianRow("swap: time lost per request (s)", [s.lost_s for s in swaps],
                  [s.lost_s for s in plains], "plain load of it (medians)"),
        MedianRow("swap: CPU time lost per request (s)", [s.lost_cpu_s for s in swaps],
                  [s.lost_cpu_s for s in plains], "plain load of it (medians)")]
    medians = {kind: {attr: round(_median(samples, kind, attr), 3) for attr in
                      ("lost_s", "first_s", "resident_s", "load_s", "in_worker_s",
                       "lost_cpu_s")}
               for kind in ("swap", "plain")}
    setup = {
        "load_average": [round(x, 2) for x in load_avg],
        "rounds": rounds,
        "medians_s": medians,
        "samples": [asdict(s) | {"lost_s": s.lost_s, "lost_cpu_s": s.lost_cpu_s}
                    for s in samples],
        "one_model_budget": {"requests": swapping.requests, "loads": swapping.loads,
                             "switches": swapping.loads,
                             "worker_handoffs": swapping.handoffs,
                             "worker_processes": len(swapping.worker_pids)},
        "two_clients_one_budget": {"requests": together.requests, "loads": together.loads},
        "both_budget": {"requests": resident.requests, "loads": resident.loads,
                        "swaps": resident.loads - len(configs)},
        "budgets_bytes": {"one": one.host_bytes, "both": both.host_bytes},
    }
    return rows, setup


def print_summary(setup: dict) -> None:
    one, two = setup["one_model_budget"], setup["two_clients_one_budget"]
    both, med = setup["both_budget"], setup["medians_s"]
    print(f"  medians over {setup['rounds']} rounds × 2 models (s): ")
    for kind in ("swap", "plain"):
        m = med[kind]
        print(f"    {kind:<5} lost {m['lost_s']:.3f} = first {m['first_s']:.3f} - resident "
              f"{m['resident_s']:.3f}; load call {m['load_s']:.3f}, in the worker "
              f"{m['in_worker_s']:.3f}; CPU lost {m['lost_cpu_s']:.3f}")
    print(f"  one-model budget: {one['loads']} loads for {one['switches']} switches "
          f"(goal: one each, no thrash), {one['worker_handoffs']} hand-overs of the "
          f"victim's process, {one['worker_processes']} worker process(es) for every swap")
    print(f"  one-model budget, two clients at once: {two['loads']} loads for "
          f"{two['requests']} requests (turns batch them)")
    print(f"  budget for both: {both['swaps']} swaps in {both['requests']} requests (goal: 0)")
    print(f"  load average at the start: {setup['load_average']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.pool_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="counted rounds")
    args = parser.parse_args()
    bench_rows, bench_setup = main(args.rounds)
    for row in bench_rows:
        print(f"{row.name}: {statistics.median(row.hearth):.3f} vs "
              f"{statistics.median(row.reference):.3f} {row.reference_name}: "
              f"{row.ratio:.3f}x (goal <= 1.0)")
    print_summary(bench_setup)
