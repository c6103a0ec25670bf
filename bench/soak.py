"""Soak: many short generations and load/unload cycles in one worker; a leak is a slope.

``make soak`` (``python -m bench.soak``) runs, in one :class:`EngineClient` worker on the
default model (CPU, small context): ``--generations`` short chat replies (1,000 by
default), interleaved with ``--cycles`` unload/load cycles (50), sampling the resident
set size (RSS) of the parent and of the worker after every generation. Each series is
fitted with a least-squares line over generations; the slope, in MiB per 100 generations,
is the leak figure.

The threshold is 1 MiB per 100 generations, for either process. Why: a real per-request
leak is at least the size of something the request allocates — a token list, a text
buffer, a context's logits row (1 MiB for Gemma's 262k-float vocabulary), a sampler chain
— so it shows as >= ~1 MiB per 100 requests; allocator noise (glibc arenas, Python's
free lists) moves RSS by a few MiB at random but does not trend. At the threshold, a day
of continuous use (~10,000 replies) would grow by < 100 MiB. The first 50 generations are
excluded from the fit (caches warming: token pieces, Jinja templates, page cache of the
mmapped weights).

Writes ``bench/results/soak-<time>.json`` with every sample and prints the verdict; exits
1 when a slope is over the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil

from core.engine.api import ChatMessage, DoneEvent, GenerationRequest
from core.engine.config import EngineConfig
from core.engine.process.client import EngineClient
from core.engine.sampling import SamplingParams

THRESHOLD_MIB_PER_100 = 1.0
WARMUP = 50
PROMPTS = ("Say hi.", "Name a colour.", "Count to three.", "What is 2+2?", "One word: sky?")


def _rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def slope_per_100(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``, scaled to per 100 x."""
    if len(xs) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0] * 100)


def soak(model: Path, generations: int, cycles: int, max_tokens: int) -> dict[str, object]:
    # One thread: on a shared machine, llama.cpp threads spinning against each other make
    # a short reply take seconds; RSS, the quantity measured, does not depend on it.
    config = EngineConfig(model_path=model, n_ctx=512, n_gpu_layers=0, n_threads=1)
    cycle_every = max(1, generations // max(cycles, 1))
    samples: list[dict[str, float]] = []
    n_cycles = 0
    first_worker = 0
    t0 = time.perf_counter()
    with EngineClient() as client:
        client.load(config)
        for i in range(generations):
            if cycles and i and i % cycle_every == 0 and n_cycles < cycles:
                client.unload()
                client.load(config)
                n_cycles += 1
            request = GenerationRequest(
                messages=[ChatMessage("user", PROMPTS[i % len(PROMPTS)])],
                sampling=SamplingParams(temperature=0.8, seed=i), max_tokens=max_tokens)
            events = list(client.generate(request))
            if not isinstance(events[-1], DoneEvent):
                raise SystemExit(f"generation {i} failed: {events[-1]}")
            worker = client.worker_pid
            if worker is None or (samples and worker != first_worker):
                raise SystemExit(f"the worker changed at generation {i}: it must be one process")
            first_worker = worker
            samples.append({"i": i, "parent_mib": _rss_mib(os.getpid()),
                            "worker_mib": _rss_mib(worker), "t": time.perf_counter() - t0})
            if (i + 1) % 100 == 0:
                print(f"{i + 1} generations, {n_cycles} load cycles, parent "
                      f"{samples[-1]['parent_mib']:.1f} MiB, worker "
                      f"{samples[-1]['worker_mib']:.1f} MiB", flush=True)
        while n_cycles < cycles:  # when generations < cycles
            client.unload()
            client.load(config)
            n_cycles += 1
    fit = samples[WARMUP:] if len(samples) > 2 * WARMUP else samples
    xs = [int(s["i"]) for s in fit]
    result: dict[str, object] = {
        "generations": generations, "load_cycles": n_cycles, "max_tokens": max_tokens,
        "seconds": time.perf_counter() - t0, "threshold_mib_per_100": THRESHOLD_MIB_PER_100,
        "parent_slope_mib_per_100": slope_per_100(xs, [s["parent_mib"] for s in fit]),
        "worker_slope_mib_per_100": slope_per_100(xs, [s["worker_mib"] for s in fit]),
        "parent_mib_first_last": [samples[0]["parent_mib"], samples[-1]["parent_mib"]],
        "worker_mib_first_last": [samples[0]["worker_mib"], samples[-1]["worker_mib"]],
        "samples": samples,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    from core.models.bundled import default_model_path

    parser = argparse.ArgumentParser(description="Leak soak of the engine worker.")
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    result = soak(model, args.generations, args.cycles, args.max_tokens)
    out = Path(__file__).parent / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    ok = all(abs(float(result[k])) <= THRESHOLD_MIB_PER_100  # type: ignore[arg-type]
             for k in ("parent_slope_mib_per_100", "worker_slope_mib_per_100"))
    print(f"{result['generations']} generations and {result['load_cycles']} load/unload "
          f"cycles in {float(result['seconds']):.0f} s (samples in {out})")  # type: ignore[arg-type]
    print(f"RSS slope per 100 generations: parent "
          f"{float(result['parent_slope_mib_per_100']):+.3f} MiB, worker "  # type: ignore[arg-type]
          f"{float(result['worker_slope_mib_per_100']):+.3f} MiB "  # type: ignore[arg-type]
          f"(threshold ±{THRESHOLD_MIB_PER_100} MiB): {'OK' if ok else 'LEAK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
