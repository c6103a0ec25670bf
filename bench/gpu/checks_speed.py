"""Every layer on the GPU: decode and prefill against llama-bench (goal ≥ 0.95×); half the
layers: loads there, and generates.

Hearth is measured on the user's path — the engine in its worker process (EngineClient),
events over the pipe — alternating rounds with llama-bench so drift hits both alike.

Prefill is timed as the user feels it: time to the first token minus tokenization, for a
request that stops after that token. The engine's own ``prefill_ms`` ends when
``llama_decode`` returns, which on CUDA is before the GPU has finished (the work is
queued; the first read of the logits waits for it), so it would overstate the speed; it is
recorded beside the true figure so the difference shows.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.engine_bench import decode_tok_s, final_event
from bench.gpu.context import CheckContext, model_tokens, random_prompt, run_llama_bench
from bench.gpu.report import CheckResult, ratio_goal
from core.engine import EngineConfig, GenerationRequest, SamplingParams
from core.engine.process.client import EngineClient

N_GEN = 128
N_PROMPT = 512
GOAL = 0.95


def prefill_ttft_tok_s(client: EngineClient, prompt: list[int]) -> tuple[float, float]:
    """(prefill tok/s from the time to first token, the engine's own prefill tok/s)."""
    request = GenerationRequest(prompt_tokens=prompt, max_tokens=1, reuse_cache=False,
                                sampling=SamplingParams.greedy())
    m = final_event(client.generate(request)).metrics
    ms = m.ttft_ms - m.template_ms - m.tokenize_ms
    return (m.prefill_tokens / (ms / 1000) if ms > 0 else 0.0), m.prefill_tok_s


def off_gpu_reason(placement: str, backends: str) -> str:
    """Why a measurement is not a GPU measurement ("" when it is)."""
    problems = []
    if placement == "CPU" or "CPU" in placement:
        problems.append(f"Hearth ran on {placement}")
    if backends and "CUDA" not in backends:
        problems.append(f"llama-bench ran on {backends}")
    return "; ".join(problems)


def offload_speed(ctx: CheckContext) -> list[CheckResult]:
    model = ctx.models["Q4_K_M"]
    bos, vocab = model_tokens(model)
    prompt = random_prompt(vocab, N_PROMPT)
    config = EngineConfig(model_path=model, n_ctx=N_PROMPT + N_GEN + 64, n_batch=N_PROMPT,
                          n_ubatch=N_PROMPT, n_gpu_layers=-1, n_threads=ctx.threads)
    tg_h: list[float] = []
    tg_r: list[float] = []
    pp_h: list[float] = []
    pp_r: list[float] = []
    pp_engine_clock: list[float] = []
    backends = ""
    with EngineClient() as client:
        info = client.load(config)
        ctx.say(f"speed: Hearth on {info.placement}; {ctx.rounds} rounds × {ctx.reps} reps")
        decode_tok_s(client.generate, bos)  # warm-up, as llama-bench does
        prefill_ttft_tok_s(client, prompt)
        for _ in range(ctx.rounds):
            ref = run_llama_bench(ctx, model, 0, N_GEN, ctx.reps)
            backends = ref.backends
            tg_r += ref.samples_ts or [ref.avg_ts]
            tg_h += [decode_tok_s(client.generate, bos) for _ in range(ctx.reps)]
            ref = run_llama_bench(ctx, model, N_PROMPT, 0, ctx.reps)
            pp_r += ref.samples_ts or [ref.avg_ts]
            for _ in range(ctx.reps):
                true_rate, engine_rate = prefill_ttft_tok_s(client, prompt)
                pp_h.append(true_rate)
                pp_engine_clock.append(engine_rate)
    off_gpu = off_gpu_reason(info.placement, backends)
    ctx.shared["decode_tok_s"] = statistics.mean(tg_h)
    results = []
    for name, title, h, r in (("decode", f"decode tg{N_GEN}, all layers on GPU", tg_h, tg_r),
                              ("prefill", f"prefill pp{N_PROMPT}, all layers on GPU", pp_h,
                               pp_r)):
        status, ratio = ratio_goal(statistics.mean(h), statistics.mean(r), GOAL)
        reason = off_gpu
        if name == "prefill":
            clock = statistics.mean(pp_engine_clock)
            if clock > 1.2 * statistics.mean(h):
                reason = "; ".join(filter(None, [reason, (
                    f"the engine's own prefill clock reads {clock:.0f} tok/s: it stops "
                    "before the GPU finishes (llama_decode is asynchronous on CUDA)")]))
        results.append(CheckResult(
            name=f"offload-{name}", title=title, goal=f"≥ {GOAL:.2f}× llama-bench",
            status="error" if off_gpu else status,
            figure=f"{ratio:.3f}× ({statistics.mean(h):.0f} vs {statistics.mean(r):.0f} tok/s)",
            reason=reason,
            figures={"hearth_tok_s": h, "reference_tok_s": r, "ratio": ratio,
                     "placement": info.placement, "llama_bench_backends": backends,
                     **({"engine_prefill_clock_tok_s": pp_engine_clock}
                        if name == "prefill" else {})},
            rows=[{"side": "Hearth (worker)", "mean tok/s": statistics.mean(h),
                   "stdev": statistics.pstdev(h), "samples": len(h)},
                  {"side": "llama-bench CUDA", "mean tok/s": statistics.mean(r),
                   "stdev": statistics.pstdev(r), "samples": len(r)}]))
    return results


def half_layers(ctx: CheckContext) -> list[CheckResult]:
    """Half the layers on the GPU: the load lands there (no fallback) and generates."""
    model: Path = ctx.models["Q4_K_M"]
    bos, _ = model_tokens(model)
    from core.gguf.reader import read_local

    n_layer = read_local(model).n_layer
    half = n_layer // 2
    config = EngineConfig(model_path=model, n_ctx=1024, n_gpu_layers=half, n_threads=ctx.threads)
    with EngineClient() as client:
        info = client.load(config)
        request = GenerationRequest(prompt_tokens=[bos], max_tokens=65, ignore_eos=True,
                                    reuse_cache=False, sampling=SamplingParams.greedy())
        done = final_event(client.generate(request))
    ref = run_llama_bench(ctx, model, 0, 64, 2, n_gpu_layers=half)
    placed = info.gpu_layers == half and not info.fell_back
    generated = done.metrics.decode_tokens
    ok = placed and generated == 65
    problems = [] if placed else [f"asked for {half} layers, got: {info.message}"]
    if generated != 65:
        problems.append(f"generated {generated} of 65 tokens ({done.finish_reason})")
    hearth = done.metrics.decode_tok_s
    return [CheckResult(
        name="half-layers", title=f"half the layers on GPU ({half}/{n_layer})",
        goal="loads there and generates", status="met" if ok else "not met",
        figure=f"{info.placement}; {generated} tokens at {hearth:.0f} tok/s "
               f"(llama-bench -ngl {half}: {ref.avg_ts:.0f})",
        reason="; ".join(problems),
        figures={"placement": info.placement, "notes": info.notes, "decode_tok_s": hearth,
                 "llama_bench_tok_s": ref.avg_ts, "generated": generated})]
