"""The user's path: decode speed as ``hearth-cli generate --json`` delivers it, from outside.

The benchmark starts ``hearth-cli`` as a user would (a new process; its worker process),
reads its stdout line by line and stamps each token line on arrival; decode tok/s is the
token lines after the first over the time from the first to the last (the first token
belongs to the prefill, as in llama-bench's tg). llama-bench's tg128 runs in the same
sitting, alternating, with the same threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.engine_bench import N_GEN, Row
from bench.llama_bench import ensure_llama_bench, run_llama_bench
from core.engine.runtime.resources import default_threads

PROMPT = "Write a long story about a lighthouse keeper and the sea."


def cli_decode_tok_s(model: Path, threads: int, n_gen: int = N_GEN) -> float:
    cmd = [sys.executable, "-m", "cli", "generate", "--model", str(model), "--prompt", PROMPT,
           "--temperature", "0", "--max-tokens", str(n_gen + 1), "--ignore-eos",
           "--threads", str(threads), "--ctx", "1024", "--json"]
    stamps: list[float] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter()
            event = json.loads(line)
            if event.get("event") == "token":
                stamps.append(now)
            elif event.get("event") == "error":
                raise RuntimeError(event.get("message"))
    if proc.returncode != 0 or len(stamps) < 2:
        raise RuntimeError(f"hearth-cli failed (exit {proc.returncode}, {len(stamps)} tokens)")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bench_cli(model: Path, rounds: int = 4, reps: int = 2) -> tuple[list[Row], dict[str, object]]:
    """``reps`` runs of each side per round, back to back, the order alternating by round;
    sample i of one side pairs with sample i of the other (bench/stats.py)."""
    exe = ensure_llama_bench()
    threads = default_threads()
    row = Row(f"hearth-cli --json decode tg{N_GEN} (tok/s)", reference_name="llama-bench tg")
    cli_decode_tok_s(model, threads, 16)  # warm the page cache, as llama-bench's warm-up
    for r in range(rounds):
        for side in ("reference", "hearth") if r % 2 == 0 else ("hearth", "reference"):
            if side == "reference":
                row.reference += run_llama_bench(exe, model, threads, 0, N_GEN, reps).samples_ts
            else:
                row.hearth += [cli_decode_tok_s(model, threads) for _ in range(reps)]
    return [row], {"model": model.name, "threads": threads, "rounds": rounds, "reps": reps}
