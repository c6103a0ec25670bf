"""NVML power sampled during a decode on the GPU, through Hearth's own telemetry: the
sampler the app runs (``TelemetrySampler`` over ``detect_power()``), the accounting the
panel shows (``account``: energy, J/token).

Goal: the GPU readings are non-zero and plausible — above the idle draw measured just
before, at most the board's power limit — from several samples, with a J/token figure.
GPU-only energy is integrated from the samples' ``gpu_w`` beside the total (which adds the
CPU package where RAPL is readable).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from bench.engine_bench import final_event
from bench.gpu.context import CheckContext, model_tokens
from bench.gpu.report import CheckResult, power_goal
from core.engine import EngineConfig, GenerationRequest, SamplingParams
from core.engine.process.client import EngineClient
from core.telemetry import PowerSetup

IDLE_S = 1.5
DECODE_S = 4.0  # long enough for tens of samples at 10 Hz
N_CTX = 8192


def power(ctx: CheckContext, setup: PowerSetup | None = None) -> list[CheckResult]:
    """``setup`` defaults to what the app would use (``detect_power()``)."""
    from core.planning.hardware import probe_nvml
    from core.telemetry import TelemetrySampler, account, detect_power, integrate_energy

    setup = setup or detect_power()
    if setup.gpu is None:
        reasons = next((u["reason"] for u in setup.unavailable if u["name"] == "nvml"),
                       "no GPU power source")
        setup.close()
        return [CheckResult(name="power", title="NVML power during decode",
                            goal="non-zero, plausible, J/token", status="error",
                            reason=f"NVML is not in use: {reasons}")]
    gpus, _ = probe_nvml(None)
    limit = gpus[0].power_limit_w if gpus else None
    model = ctx.models["Q4_K_M"]
    bos, _ = model_tokens(model)
    rate = float(ctx.shared.get("decode_tok_s", 500.0))
    n_tokens = int(min(N_CTX - 64, max(512, rate * DECODE_S)))
    config = EngineConfig(model_path=model, n_ctx=N_CTX, n_gpu_layers=-1, n_threads=ctx.threads)
    with EngineClient() as client:
        client.load(config)
        with TelemetrySampler(hz=10, power=setup, pid=client.worker_pid) as sampler:
            t_idle = time.perf_counter_ns()
            time.sleep(IDLE_S)
            idle = [s.gpu_w for s in sampler.samples(t_idle) if s.gpu_w is not None]
            done = final_event(client.generate(GenerationRequest(
                prompt_tokens=[bos], max_tokens=n_tokens, ignore_eos=True, reuse_cache=False,
                sampling=SamplingParams.greedy())))
            acc = account(sampler, done)
            window = sampler.window(acc.t_start_ns, acc.t_end_ns)
    setup.close()
    gpu_only = [replace(s, power_w=s.gpu_w) for s in window]
    gpu_energy = integrate_energy(gpu_only, acc.t_start_ns, acc.t_end_ns)
    inside = [s.gpu_w for s in window
              if s.gpu_w is not None and acc.t_start_ns <= s.t_ns <= acc.t_end_ns]
    idle_w = statistics.mean(idle) if idle else None
    tokens = acc.generated_tokens
    gpu_j_tok = gpu_energy.joules / tokens if gpu_energy.joules and tokens else None
    status, problems = power_goal(gpu_energy.mean_w, idle_w, limit, gpu_j_tok, len(inside))
    return [CheckResult(
        name="power", title="NVML power during decode (all layers)",
        goal="non-zero, above idle, ≤ board limit; J/token",
        status=status,
        figure=(f"GPU {gpu_energy.mean_w or 0:.0f} W (idle {idle_w or 0:.0f} W, limit "
                f"{limit or '?'} W); {gpu_j_tok or 0:.4f} J/token GPU, "
                f"{acc.j_per_token or 0:.4f} J/token total"),
        reason=problems,
        figures={"gpu_mean_w": gpu_energy.mean_w, "idle_w": idle_w, "limit_w": limit,
                 "gpu_j_per_token": gpu_j_tok, "total_j_per_token": acc.j_per_token,
                 "samples_in_window": len(inside), "tokens": tokens,
                 "decode_tok_s": acc.decode_tok_s, "formula": setup.formula,
                 "accounting": acc.to_dict() | {"token_latencies_ms": []}})]
