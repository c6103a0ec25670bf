"""Aggregate decode with many sequences: Hearth's scheduler against ``llama-batched-bench``.

Both sides: the same model, threads, a unified KV cache of 16 × (64 + 64) cells with 16
sequences, n_batch 2048 / n_ubatch 512; each of B sequences gets its own 64-token prompt
(pp64), then decodes 64 tokens (tg64). llama-batched-bench's ``speed_tg`` is B × 64 tokens
over the time of its 64 decode steps (it samples nothing). Hearth runs B greedy requests at
once through the worker process, their events pushed to sinks on the client's reader thread
(the server's path, core/engine/push.py: no consumer thread woken per token): its aggregate decode
is the tokens the B streams received while all B were decoding, over that window, timed by
the engine's own per-token stamps (so the prefill of late arrivals is not counted).
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from bench.engine_bench import Row
from bench.llama_bench import ensure_tool
from core.engine import (
    DoneEvent,
    EngineConfig,
    Event,
    GenerationRequest,
    SamplingParams,
    TextEvent,
)
from core.engine.process.client import EngineClient
from core.engine.runtime.resources import default_threads

WIDTHS = (1, 2, 4, 8, 16)
N_PP, N_TG = 64, 64
N_CTX = max(WIDTHS) * (N_PP + N_TG)


def run_batched_bench(exe: Path, model: Path, threads: int, widths: tuple[int, ...]
                      ) -> dict[int, float]:
    """llama-batched-bench's aggregate decode tok/s per width."""
    cmd = [str(exe), "-m", str(model), "-t", str(threads), "-c", str(N_CTX), "-b", "2048",
           "-ub", "512", "-kvu", "-npp", str(N_PP), "-ntg", str(N_TG),
           "-npl", ",".join(map(str, widths)), "--output-format", "jsonl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out: dict[int, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            out[int(row["pl"])] = float(row["speed_tg"])
    return out


def hearth_aggregate(client: EngineClient, width: int, n_vocab: int, seed: int) -> float:
    """B streams at once; tokens received while all B were decoding, per second."""
    rng = random.Random(seed)
    stamps: list[list[int]] = [[] for _ in range(width)]
    finals: list[DoneEvent | None] = [None] * width

    def sink(i: int) -> Callable[[Event], None]:
        def record(event: Event) -> None:
            if isinstance(event, TextEvent):
                stamps[i].append(event.t_ns)
            elif isinstance(event, DoneEvent):
                finals[i] = event
        return record

    def stream(i: int) -> None:
        """One request, its events pushed (the server's path: core/engine/push.py)."""
        prompt = [rng.randrange(1000, n_vocab) for _ in range(N_PP)]
        request = GenerationRequest(prompt_tokens=prompt, sampling=SamplingParams.greedy(),
                                    max_tokens=N_TG + 1, ignore_eos=True, reuse_cache=False)
        client.submit(request, sink(i)).run()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(f is not None and f.metrics.decode_tokens == N_TG + 1 for f in finals), finals
    start = max(s[0] for s in stamps)  # the last stream's first token: all B decode now
    end = min(s[-1] for s in stamps)  # the first stream's last token
    if end <= start:  # the first streams ended before the last began: never all B at once
        return math.nan  # no such figure, rather than a 0 that reads as "measured slow"
    n = sum(1 for s in stamps for t in s if start < t <= end)
    return n / ((end - start) / 1e9)


def bench_batched(model: Path, rounds: int = 4) -> tuple[list[Row], dict[str, object]]:
    """Each width is a pair per round: llama-batched-bench at that width and Hearth's B
    streams, back to back, in alternating order (bench/stats.py: the ratio is the median of
    the pairs'). llama-batched-bench runs one width per invocation, so its context has
    ``n_seq_max = B`` where Hearth's worker keeps 16; in a unified cache that changes only the
    sliding-window cache's reserve, never the cells the B sequences attend over."""
    exe = ensure_tool("llama-batched-bench")
    threads = default_threads()
    rows = {w: Row(f"aggregate decode, {w} seq (tok/s)", reference_name="llama-batched-bench")
            for w in WIDTHS}
    # Each Hearth request asks N_TG + 1 tokens (its first comes from the prefill and is not
    # counted), so its KV reservation is one cell more than llama-batched-bench's per sequence.
    config = EngineConfig(model_path=model, n_ctx=N_CTX + max(WIDTHS), n_batch=2048, n_ubatch=512,
                          n_seq_max=max(WIDTHS), n_threads=threads)
    with EngineClient() as client:
        loaded = client.load(config)
        from core.gguf.reader import read_local

        n_vocab = read_local(model).vocab_size or 32000
        hearth_aggregate(client, 2, n_vocab, 99)  # warm-up
        run_batched_bench(exe, model, threads, (2,))
        for r in range(rounds):
            for i, w in enumerate(WIDTHS):
                sides = ["reference", "hearth"] if (r + i) % 2 == 0 else ["hearth", "reference"]
                for side in sides:
                    if side == "reference":
                        rows[w].reference.append(run_batched_bench(exe, model, threads, (w,))[w])
                    else:
                        rows[w].hearth.append(hearth_aggregate(client, w, n_vocab, r * 100 + w))
    setup = {"model": model.name, "threads": threads, "n_ctx": N_CTX, "n_batch": 2048,
             "n_ubatch": 512, "pp": N_PP, "tg": N_TG, "rounds": rounds,
             "worker_pid": loaded.worker_pid, "llama_batched_bench": str(exe)}
    return list(rows.values()), setup
