"""What every check gets: the models, the reference tools, and a few shared helpers.

The checks run in a child interpreter whose ``PYTHONPATH`` puts the CUDA build of
llama-cpp-python first, so ``import llama_cpp`` here (and in every engine worker it spawns)
is the GPU build. The reference tools come from the same build tree.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gpu.parse import BenchTest, find_test, parse_llama_bench_json
from bench.gpu.report import CheckResult


@dataclass
class CheckContext:
    """Inputs of the checks. ``models`` maps "Q4_K_M", "Q8_0", "F16" to files; ``tools``
    maps "llama-bench", "llama-batched-bench" to executables; ``shared`` carries figures
    one check measured for a later one (decode speed sizes the power run)."""

    models: dict[str, Path]
    tools: dict[str, str]
    threads: int
    rounds: int = 3
    reps: int = 3
    model_label: str = ""
    shared: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"[gpu-check] {text}", file=sys.stderr, flush=True)


def model_tokens(path: Path) -> tuple[int, int]:
    """(BOS token id, vocabulary size) from the file's header."""
    from core.gguf.reader import read_local

    info = read_local(path)
    return int(info.metadata.get("tokenizer.ggml.bos_token_id", 2)), info.vocab_size


def random_prompt(vocab: int, n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1000, vocab) for _ in range(n)]


def run_llama_bench(ctx: CheckContext, model: Path, n_prompt: int, n_gen: int, reps: int,
                    n_gpu_layers: int = -1) -> BenchTest:
    """One llama-bench test on the GPU build (all layers unless told otherwise)."""
    cmd = [ctx.tools["llama-bench"], "-m", str(model), "-t", str(ctx.threads),
           "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps),
           "-ngl", str(n_gpu_layers), "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"llama-bench exited {proc.returncode}: "
                           + " | ".join(proc.stderr.strip().splitlines()[-3:]))
    return find_test(parse_llama_bench_json(proc.stdout), n_prompt, n_gen)


def timed(fn: Callable[[CheckContext], list[CheckResult]], ctx: CheckContext
          ) -> list[CheckResult]:
    """Run one check function; a crash becomes an ``error`` result, never the run's end."""
    t0 = time.monotonic()
    name = fn.__name__.replace("_", "-")
    try:
        results = fn(ctx)
    except Exception as err:  # a broken check is reported; the others still run
        results = [CheckResult(name=name, title=name, goal="", status="error",
                               reason=f"{type(err).__name__}: {err}"[:600])]
    seconds = round(time.monotonic() - t0, 1)
    for r in results:
        r.seconds = r.seconds or seconds
    return results
