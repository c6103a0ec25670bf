"""VRAM predicted (core/planning/memory_model.py) against measured (NVML used-memory delta
of a fresh process) for Q4_K_M, Q8_0 and F16 at 4k and 32k context, every layer on the
GPU: goal ±5 %. The same for half the layers (what the planner's "partial offload" label
rests on), reported as its own result.

Besides the error, each row shows the CUDA-context size the measurement implies
(measured − every predicted term but the context's 400 MiB guess): if the rest of the model
is right, that figure is the same in every row, and it is what ``CUDA_CONTEXT_BYTES``
should become. The stage figures (after load, after context, after a decode) say which
term is off when it is not.

Half the layers is where llama.cpp's counting matters: ``n_gpu_layers = k`` puts the
output head and the last k − 1 repeating layers on the GPU (llama-model.cpp, i_gpu_start),
so a prediction that counts k repeating layers and no head is off by the head — for
Gemma 3's tied embedding, a copy of the embedding matrix and the logits buffer.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.gpu.context import CheckContext
from bench.gpu.report import CheckResult, Status, relative_error, within_goal
from bench.gpu.vram_probe import measure, used_now, wait_for_baseline

QUANTS = ("Q4_K_M", "Q8_0", "F16")
CONTEXTS = (4096, 32768)
HALF = (("Q4_K_M", 4096), ("F16", 4096))
TOLERANCE = 0.05
MiB = 1 << 20


def vram_row(path: Path, quant: str, n_ctx: int, n_gpu_layers: int, baseline: int
             ) -> tuple[dict[str, Any], Status, float, int]:
    """(table row, status, relative error, implied CUDA context bytes) of one load."""
    from core.gguf.reader import read_local
    from core.planning.memory_model import CUDA_CONTEXT_BYTES, LoadConfig, predict

    wait_for_baseline(baseline)
    est = predict(read_local(path), LoadConfig(n_ctx=n_ctx, n_gpu_layers=n_gpu_layers),
                  gpu_present=True)
    got = measure(path, n_ctx, n_gpu_layers)
    status, err = within_goal(est.vram_bytes, got["increase"], TOLERANCE)
    cuda_ctx = got["increase"] - (est.vram_bytes - CUDA_CONTEXT_BYTES)
    parts = {k: v[1] for k, v in est.parts.items() if v[1]}
    row = {"model": quant, "n_ctx": n_ctx, "gpu layers": n_gpu_layers,
           "predicted MiB": est.vram_bytes / MiB, "measured MiB": got["increase"] / MiB,
           "error": f"{err:+.1%}", "after load MiB": got["load"] / MiB,
           "after context MiB": got["context"] / MiB,
           "predicted weights MiB": parts.get("weights", 0) / MiB,
           "predicted kv MiB": parts.get("kv cache", 0) / MiB,
           "predicted compute MiB": parts.get("compute buffer", 0) / MiB,
           "implied CUDA context MiB": cuda_ctx / MiB, "status": status}
    return row, status, err, cuda_ctx


def summarize_vram(name: str, title: str, goal: str, rows: list[dict[str, Any]],
            statuses: list[Status], errors: list[float], implied: list[int]) -> CheckResult:
    from core.planning.memory_model import CUDA_CONTEXT_BYTES

    worst = max(errors, key=abs)
    median_ctx = statistics.median(implied)
    shift = (median_ctx - CUDA_CONTEXT_BYTES) / MiB
    corrected = max(abs(relative_error(r["predicted MiB"] + shift, r["measured MiB"]))
                    for r in rows)
    spread = (max(implied) - min(implied)) / MiB
    return CheckResult(
        name=name, title=title, goal=goal,
        status="met" if all(s == "met" for s in statuses) else "not met",
        figure=f"worst error {worst:+.1%}",
        reason=(f"implied CUDA context {median_ctx / MiB:.0f} MiB (spread {spread:.0f} MiB; "
                f"the model assumes {CUDA_CONTEXT_BYTES / MiB:.0f}); with it, worst error "
                f"{corrected:.1%}"),
        figures={"worst_error": worst, "implied_cuda_context_bytes": implied,
                 "median_implied_cuda_context_bytes": median_ctx,
                 "assumed_cuda_context_bytes": CUDA_CONTEXT_BYTES,
                 "worst_error_with_median_context": corrected},
        rows=rows)


def vram(ctx: CheckContext) -> list[CheckResult]:
    from core.gguf.reader import read_local

    baseline = used_now()  # whatever is in use before the first probe
    results = []
    for name, title, loads in (
            ("vram", "VRAM predicted vs measured (NVML), all layers",
             [(q, n, -1) for q in QUANTS for n in CONTEXTS]),
            ("vram-half", "VRAM predicted vs measured (NVML), half the layers",
             [(q, n, read_local(ctx.models[q]).n_layer // 2) for q, n in HALF])):
        rows, statuses, errors, implied = [], [], [], []
        for quant, n_ctx, layers in loads:
            row, status, err, cuda_ctx = vram_row(ctx.models[quant], quant, n_ctx, layers,
                                                  baseline)
            ctx.say(f"vram {quant} {n_ctx} ngl {layers}: predicted "
                    f"{row['predicted MiB']:.0f} MiB, measured {row['measured MiB']:.0f} "
                    f"MiB ({err:+.1%})")
            rows.append(row)
            statuses.append(status)
            errors.append(err)
            implied.append(cuda_ctx)
        goal = (f"±{TOLERANCE:.0%}, Q4_K_M/Q8_0/F16 at 4k and 32k" if name == "vram"
                else f"±{TOLERANCE:.0%}, Q4_K_M and F16 at 4k")
        results.append(summarize_vram(name, title, goal, rows, statuses, errors, implied))
    return results
