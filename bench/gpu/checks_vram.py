"""VRAM predicted (core/planning/memory_model.py) against measured (NVML used-memory delta
of a fresh process) for Q4_K_M, Q8_0 and F16 at 4k and 32k context: goal ±5 %.

Besides the error, each row shows the CUDA-context size the measurement implies
(measured − every predicted term but the context's 400 MiB guess): if the rest of the model
is right, that figure is the same in every row, and it is what ``CUDA_CONTEXT_BYTES``
should become. The stage figures (after load, after context, after a decode) say which
term is off when it is not.
"""

from __future__ import annotations

import statistics

from bench.gpu.context import CheckContext
from bench.gpu.report import CheckResult, relative_error, within_goal
from bench.gpu.vram_probe import measure, used_now, wait_for_baseline

QUANTS = ("Q4_K_M", "Q8_0", "F16")
CONTEXTS = (4096, 32768)
TOLERANCE = 0.05
MiB = 1 << 20


def vram(ctx: CheckContext) -> list[CheckResult]:
    from core.gguf.reader import read_local
    from core.planning.memory_model import CUDA_CONTEXT_BYTES, LoadConfig, predict

    rows = []
    baseline = used_now()  # whatever is in use before the first probe
    worst = 0.0
    all_met = True
    implied = []
    for quant in QUANTS:
        path = ctx.models[quant]
        info = read_local(path)
        for n_ctx in CONTEXTS:
            wait_for_baseline(baseline)
            est = predict(info, LoadConfig(n_ctx=n_ctx, n_gpu_layers=-1), gpu_present=True)
            got = measure(path, n_ctx)
            status, err = within_goal(est.vram_bytes, got["increase"], TOLERANCE)
            all_met &= status == "met"
            worst = err if abs(err) > abs(worst) else worst
            cuda_ctx = got["increase"] - (est.vram_bytes - CUDA_CONTEXT_BYTES)
            implied.append(cuda_ctx)
            parts = {k: v[1] for k, v in est.parts.items() if v[1]}
            rows.append({
                "model": quant, "n_ctx": n_ctx, "predicted MiB": est.vram_bytes / MiB,
                "measured MiB": got["increase"] / MiB, "error": f"{err:+.1%}",
                "after load MiB": got["load"] / MiB, "after context MiB": got["context"] / MiB,
                "predicted weights MiB": parts.get("weights", 0) / MiB,
                "predicted kv MiB": parts.get("kv cache", 0) / MiB,
                "predicted compute MiB": parts.get("compute buffer", 0) / MiB,
                "implied CUDA context MiB": cuda_ctx / MiB, "status": status})
            ctx.say(f"vram {quant} {n_ctx}: predicted {est.vram_bytes / MiB:.0f} MiB, "
                    f"measured {got['increase'] / MiB:.0f} MiB ({err:+.1%})")
    median_ctx = statistics.median(implied)
    spread = (max(implied) - min(implied)) / MiB
    advice = (f"implied CUDA context {median_ctx / MiB:.0f} MiB (spread {spread:.0f} MiB "
              f"across rows; the model assumes {CUDA_CONTEXT_BYTES / MiB:.0f})")
    return [CheckResult(
        name="vram", title="VRAM predicted vs measured (NVML), all layers",
        goal=f"±{TOLERANCE:.0%} for Q4_K_M, Q8_0, F16 at 4k and 32k",
        status="met" if all_met else "not met", figure=f"worst error {worst:+.1%}",
        reason=advice,
        figures={"worst_error": worst, "implied_cuda_context_bytes": implied,
                 "median_implied_cuda_context_bytes": median_ctx,
                 "assumed_cuda_context_bytes": CUDA_CONTEXT_BYTES,
                 "corrected_worst_error": max(
                     abs(relative_error(r["predicted MiB"] + (median_ctx - CUDA_CONTEXT_BYTES)
                                        / MiB, r["measured MiB"])) for r in rows)},
        rows=rows)]
