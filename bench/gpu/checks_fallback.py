"""A load that cannot fit the GPU walks the fallback chain (all layers → half → CPU) on
real CUDA out-of-memory failures, and tells the user.

"Cannot fit" is made real without depending on the card's size: a ballast process holds
all but a little of the VRAM, as another program would, leaving room for the half-layer
placement but not for all layers (the memory model's prediction of each, split at the
middle). The engine then gets genuine allocation failures from llama.cpp, in whichever
step they come (weights, KV cache, compute buffers, or an abort in the warm-up decode:
each is a step down the chain). The goal: the all-layers attempt fails, the load ends on
fewer layers or the CPU, the notes the user sees say so, and the model then generates.
"""

from __future__ import annotations

from bench.engine_bench import final_event
from bench.gpu.ballast import Ballast
from bench.gpu.context import CheckContext, model_tokens
from bench.gpu.report import CheckResult
from core.engine import EngineConfig, GenerationRequest, SamplingParams
from core.engine.process.client import EngineClient

N_CTX = 32768
MiB = 1 << 20


def fallback(ctx: CheckContext) -> list[CheckResult]:
    from core.gguf.reader import read_local
    from core.planning.memory_model import LoadConfig, predict

    model = ctx.models["F16"]
    info = read_local(model)
    half = info.n_layer // 2
    need_all = predict(info, LoadConfig(n_ctx=N_CTX, n_gpu_layers=-1)).vram_bytes
    need_half = predict(info, LoadConfig(n_ctx=N_CTX, n_gpu_layers=half)).vram_bytes
    leave = (need_all + need_half) // 2
    bos, _ = model_tokens(model)
    config = EngineConfig(model_path=model, n_ctx=N_CTX, n_gpu_layers=-1, n_threads=ctx.threads)
    with Ballast(leave) as ballast, EngineClient() as client:
        ctx.say(f"fallback: {ballast.free / MiB:.0f} MiB of VRAM left free; all layers need "
                f"~{need_all / MiB:.0f}, half ~{need_half / MiB:.0f} (predicted)")
        loaded = client.load(config)
        done = final_event(client.generate(GenerationRequest(
            prompt_tokens=[bos], max_tokens=16, ignore_eos=True, reuse_cache=False,
            sampling=SamplingParams.greedy())))
    first_failed = bool(loaded.notes) and "failed" in loaded.notes[0]
    fewer = loaded.gpu_layers < loaded.n_layer
    generated = done.metrics.decode_tokens == 16
    ok = loaded.fell_back and first_failed and fewer and generated
    problems = []
    if not first_failed:
        problems.append("the all-layers load did not fail (the ballast left too much?)")
    if not fewer:
        problems.append(f"it still runs on {loaded.placement}")
    if not generated:
        problems.append(f"then generated {done.metrics.decode_tokens} of 16 tokens")
    return [CheckResult(
        name="fallback", title=f"a load beyond free VRAM (F16, {N_CTX // 1024}k context)",
        goal="falls back along the chain and says so", status="met" if ok else "not met",
        figure=f"ended on {loaded.placement}", reason="; ".join(problems),
        figures={"message": loaded.message, "notes": loaded.notes,
                 "free_vram_mib": ballast.free / MiB, "predicted_all_mib": need_all / MiB,
                 "predicted_half_mib": need_half / MiB, "gpu_layers": loaded.gpu_layers},
        rows=[{"step": i + 1, "what the user is told": note}
              for i, note in enumerate([*loaded.notes, f"running on {loaded.placement}"])])]
