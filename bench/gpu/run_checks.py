"""The checks' own process: ``python -m bench.gpu.run_checks CONFIG.json``.

Started by ``bench/gpu_check.py`` with the CUDA build of llama-cpp-python first on
``PYTHONPATH`` (and the CUDA libraries on ``LD_LIBRARY_PATH``), so everything imported
here — and every engine worker spawned from here — runs the GPU build. It makes the models,
runs the selected checks in order (each one's crash is its own ``error``), and rewrites the
results file after every check, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gpu.context import CheckContext, timed
from bench.gpu.report import CheckResult

# name -> (module, function, estimated seconds on a 16-core H100/H200-class machine)
CHECKS: dict[str, tuple[str, str, int]] = {
    "offload": ("bench.gpu.checks_speed", "offload_speed", 40),
    "half": ("bench.gpu.checks_speed", "half_layers", 10),
    "fallback": ("bench.gpu.checks_fallback", "fallback", 20),
    "vram": ("bench.gpu.checks_vram", "vram", 55),
    "power": ("bench.gpu.checks_power", "power", 15),
    "batched": ("bench.gpu.checks_batched", "batched", 45),
}
MODELS_ESTIMATE_S = 30


def check_function(name: str) -> Callable[[CheckContext], list[CheckResult]]:
    import importlib

    module, function, _ = CHECKS[name]
    fn: Callable[[CheckContext], list[CheckResult]] = getattr(
        importlib.import_module(module), function)
    return fn


def verify_cuda_build(site_dir: str | None) -> dict[str, Any]:
    """The imported llama_cpp is the CUDA build and sees a GPU, or RuntimeError why not."""
    import llama_cpp

    from core.planning.hardware import probe_llama_devices

    where = str(Path(llama_cpp.__file__).resolve().parent)
    if site_dir and not where.startswith(str(Path(site_dir).resolve())):
        raise RuntimeError(f"imported llama_cpp from {where}, not the CUDA build in {site_dir}")
    devices, offload = probe_llama_devices()
    gpus = [d for d in devices if d.type in ("gpu", "igpu")]
    if not offload or not gpus:
        raise RuntimeError(f"llama.cpp at {where} offers no GPU (offload={offload}, devices: "
                           + ", ".join(f"{d.name} ({d.type})" for d in devices) + ")")
    return {"llama_cpp": where, "devices": [f"{d.name}: {d.description}" for d in gpus]}


def make_models(cfg: dict[str, Any], say: Callable[[str], None]) -> tuple[dict[str, Path], str]:
    """Q4_K_M, Q8_0 and F16 files: given, synthesized from the kit's header, or the
    bundled model requantized (as the test suite's variants are)."""
    if cfg.get("models"):
        return {k: Path(v) for k, v in cfg["models"].items()}, "given files"
    folder = Path(cfg["work"]) / "models"
    header = cfg.get("model_header")
    if header and Path(header).is_file():
        from bench.gpu import synth

        say("making the models: synthetic Gemma 3 270M (the bundled model's shapes and "
            "vocabulary, random weights) as F16, Q4_K_M and Q8_0")
        return synth.variants(Path(header), folder), (
            "synthetic Gemma 3 270M (bundled model's header, random weights)")
    from core.gguf.quantize import quantize_model
    from core.models.bundled import default_model_path

    base = default_model_path()
    out = {"Q4_K_M": base}
    for qtype in ("Q8_0", "F16"):
        path = folder / f"gemma-3-270m-{qtype.lower()}-from-q4_k_m.gguf"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            quantize_model(base, path, qtype, allow_requantize=True)
        out[qtype] = path
    return out, "bundled Gemma 3 270M Q4_K_M (Q8_0 and F16 requantized from it)"


def run_selected(names: list[str], ctx: CheckContext, state: dict[str, Any],
                 deadline: float | None, save: Callable[[], None]) -> None:
    """Run the checks in order into ``state``; one that no longer fits before ``deadline``
    (a ``time.time()``) is recorded as skipped, with how to run it on its own."""
    for name in names:
        estimate = CHECKS[name][2]
        left = deadline - time.time() if deadline else None
        if left is not None and left < estimate:
            state["checks"].append(CheckResult(
                name=name, title=f"check {name}", goal="", status="skipped",
                reason=f"out of time: {max(0, left):.0f} s left, it takes ~{estimate} s; "
                       f"run it again with --only {name}").to_dict())
            continue
        ctx.say(f"check {name}: est. ~{estimate} s")
        t0 = time.monotonic()
        results = timed(check_function(name), ctx)
        state["checks"] += [r.to_dict() for r in results]
        state["phases"].append({"name": f"check {name}", "estimate_s": estimate,
                                "seconds": round(time.monotonic() - t0, 1)})
        for r in results:
            ctx.say(f"  {r.title}: {r.status} — {r.figure} {r.reason}".rstrip())
        save()


def main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    out = Path(cfg["results"])
    ctx_say = CheckContext({}, {}, 1).say
    state: dict[str, Any] = {"checks": [], "phases": [], "error": None}

    def save() -> None:
        out.write_text(json.dumps(state, indent=2, default=str) + "\n")

    try:
        state["llama_cpp"] = verify_cuda_build(cfg.get("site_dir"))
        t0 = time.monotonic()
        ctx_say(f"models: est. ~{MODELS_ESTIMATE_S} s")
        models, label = make_models(cfg, ctx_say)
        state["phases"].append({"name": "models", "estimate_s": MODELS_ESTIMATE_S,
                                "seconds": round(time.monotonic() - t0, 1)})
    except Exception as err:  # nothing can be checked: say why, once
        state["error"] = f"{type(err).__name__}: {err}"
        save()
        return 1
    state["models"] = {k: str(v) for k, v in models.items()}
    state["model_label"] = label
    ctx = CheckContext(models=models, tools=cfg["tools"], threads=cfg["threads"],
                       rounds=cfg.get("rounds", 3), reps=cfg.get("reps", 3), model_label=label)
    run_selected(cfg["checks"], ctx, state, cfg.get("deadline"), save)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
