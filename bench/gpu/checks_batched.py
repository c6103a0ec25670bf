"""Aggregate decode at 1–32 parallel sequences against llama-batched-bench CUDA; the goal is
the seed's: at 8 sequences, at least 3× one sequence's rate.

llama-batched-bench runs first and always (its figures say what this GPU can do). Hearth's
side goes through ONE function, :func:`hearth_aggregate_decode`, the hook for the batching
engine: until the engine decodes several sequences at once it raises
:class:`BatchingUnavailable`, and the check reports "not available in this build" instead
of failing the run.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from bench.gpu.context import CheckContext, model_tokens, random_prompt
from bench.gpu.parse import aggregate_decode, parse_batched_bench
from bench.gpu.report import CheckResult, scaling_goal

PARALLEL = (1, 2, 4, 8, 16, 32)
N_PROMPT = 128
N_GEN = 128


class BatchingUnavailable(Exception):
    """This build's engine cannot decode that many sequences at once."""


# ── THE HOOK FOR THE BATCHING ENGINE ─────────────────────────────────────────────────────
# Lead: this is the one place the check calls Hearth's batched decode. It assumes what the
# work in progress shows — ``EngineConfig.n_seq_max`` sequences decoded together, and an
# EngineClient whose ``generate`` may be called from several threads at once (the
# EngineBackend contract) — and measures as llama-batched-bench does: every request starts
# at once, and the aggregate rate is all tokens after each request's first, over the span
# from the earliest first token to the latest last one. Adjust it here if the API differs.
def hearth_aggregate_decode(model: Path, n_parallel: int, n_prompt: int = N_PROMPT,
                            n_gen: int = N_GEN, n_threads: int | None = None) -> float:
    """Aggregate decode tok/s of Hearth with ``n_parallel`` requests at once, all layers on
    the GPU; raises BatchingUnavailable when this build cannot batch them."""
    from bench.engine_bench import final_event
    from core.engine import EngineConfig, GenerationRequest, SamplingParams
    from core.engine.process.client import EngineClient

    if "n_seq_max" not in {f.name for f in fields(EngineConfig)}:
        raise BatchingUnavailable("not available in this build: EngineConfig has no n_seq_max")
    _, vocab = model_tokens(model)
    config = EngineConfig(model_path=model, n_ctx=n_parallel * (n_prompt + n_gen) + 256,
                          n_gpu_layers=-1, n_threads=n_threads,
                          n_seq_max=n_parallel)
    with EngineClient() as client:
        info = client.load(config)
        if info.n_seq_max < n_parallel:
            raise BatchingUnavailable(f"not available in this build: the engine decodes "
                                      f"{info.n_seq_max} sequence(s) at once")
        spans: list[tuple[int, int, int]] = []
        errors: list[str] = []

        def one(i: int) -> None:
            request = GenerationRequest(prompt_tokens=random_prompt(vocab, n_prompt, seed=i),
                                        max_tokens=n_gen, ignore_eos=True, reuse_cache=False,
                                        sampling=SamplingParams.greedy())
            try:
                m = final_event(client.generate(request)).metrics
            except AssertionError as err:
                errors.append(str(err))
                return
            first = m.t_start_ns + int(m.ttft_ms * 1e6)
            spans.append((first, first + int(m.decode_ms * 1e6), m.decode_tokens - 1))

        workers = [threading.Thread(target=one, args=(i,)) for i in range(n_parallel)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if errors or len(spans) != n_parallel:
        raise RuntimeError(f"{len(errors)} of {n_parallel} requests failed: {errors[:1]}")
    span_s = (max(s[1] for s in spans) - min(s[0] for s in spans)) / 1e9
    return sum(s[2] for s in spans) / span_s if span_s > 0 else 0.0
# ── end of the hook ──────────────────────────────────────────────────────────────────────


def reference(ctx: CheckContext, model: Path) -> dict[int, float]:
    """llama-batched-bench's aggregate decode by sequences (all layers, unified KV cache
    as Hearth's context uses, each sequence its own prompt)."""
    n_kv = max(PARALLEL) * (N_PROMPT + N_GEN)
    cmd = [ctx.tools["llama-batched-bench"], "-m", str(model), "-c", str(n_kv), "-b", "2048",
           "-ub", "512", "-ngl", "99", "-kvu", "-t", str(ctx.threads),
           "-npp", str(N_PROMPT), "-ntg", str(N_GEN), "-npl", ",".join(map(str, PARALLEL)),
           "--output-format", "jsonl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"llama-batched-bench exited {proc.returncode}: "
                           + " | ".join(proc.stderr.strip().splitlines()[-3:]))
    return aggregate_decode(parse_batched_bench(proc.stdout))


def batched(ctx: CheckContext) -> list[CheckResult]:
    model = ctx.models["Q4_K_M"]
    ref = reference(ctx, model)
    return judge_batched(ref, lambda n: hearth_aggregate_decode(model, n, n_threads=ctx.threads),
                         ctx.say)


def judge_batched(ref: dict[int, float], hearth_at: Callable[[int], float],
                  say: Callable[[str], None] = print) -> list[CheckResult]:
    """Hearth's rate at each sequence count beside the reference's, and the seed's goal;
    "unavailable" (with the hook's reason) when this build cannot batch."""
    hearth: dict[int, float] = {}
    unavailable = ""
    for n in PARALLEL:
        try:
            hearth[n] = hearth_at(n)
        except BatchingUnavailable as why:
            unavailable = str(why)
            break
        say(f"batched {n}: Hearth {hearth[n]:.0f} tok/s, llama-batched-bench "
            f"{ref.get(n, 0):.0f}")
    rows = [{"sequences": n, "Hearth tok/s": hearth.get(n, "—"),
             "llama-batched-bench tok/s": ref.get(n, "—"),
             "ratio": (hearth[n] / ref[n]) if n in hearth and ref.get(n) else "—"}
            for n in PARALLEL]
    ref_status, ref_scale = scaling_goal(ref)
    common = {"name": "batched", "title": "aggregate decode, 1–32 sequences",
              "goal": "≥ 3× one sequence at 8", "rows": rows}
    if unavailable:
        return [CheckResult(**common, status="unavailable",
                            figure=f"llama-batched-bench: {ref_scale:.2f}× at 8",
                            reason=unavailable, figures={"reference": ref})]
    status, scale = scaling_goal(hearth)
    return [CheckResult(
        **common, status=status,
        figure=f"Hearth {scale:.2f}× at 8 (llama-batched-bench {ref_scale:.2f}×)",
        reason="" if ref_status == "met" else "llama-batched-bench itself misses 3× here",
        figures={"hearth": hearth, "reference": ref})]
