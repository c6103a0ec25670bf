"""One load on the GPU in a fresh process, its VRAM measured by NVML at each step.

Run as ``python -m bench.gpu.vram_probe MODEL N_CTX [N_GPU_LAYERS]``; prints one JSON line.
The process reads NVML's used memory (``core.telemetry``'s NvmlGpus, all GPUs summed) before
llama.cpp touches the GPU, after the model load (weights + the CUDA context), after the
context (KV cache + reserved compute buffers) and after one full-ubatch prefill (whatever
the first decode adds: the memory pool, cuBLAS workspace), on the engine's own classes
with the engine's settings. A fresh process per load keeps the baseline clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

N_UBATCH = 512


def _used(gpus: Any) -> int:
    return int(gpus.stats().vram_used_bytes or 0)


def probe(path: Path, n_ctx: int, n_gpu_layers: int = -1) -> dict[str, Any]:
    import llama_cpp

    from core.engine.runtime.context import Batch, Context
    from core.engine.runtime.model import LoadedModel
    from core.engine.runtime.resources import default_threads
    from core.telemetry.power.nvml import NvmlGpus

    gpus = NvmlGpus()
    base = _used(gpus)
    model = LoadedModel(path, n_gpu_layers=n_gpu_layers, validate=False)
    after_load = _used(gpus)
    threads = default_threads()
    ctx = Context(model, n_ctx=n_ctx, n_batch=N_UBATCH, n_ubatch=N_UBATCH, n_seq_max=1,
                  threads=threads)
    after_ctx = _used(gpus)
    n = min(N_UBATCH, ctx.n_ctx - 1)
    batch = Batch(n)
    batch.add_run([1000 + (i * 7919) % (model.n_vocab - 1000) for i in range(n)], 0, 0, True)
    rc = ctx.decode(batch.ptr)
    llama_cpp.llama_synchronize(ctx.ptr)
    ctx.argmax()
    time.sleep(0.2)  # NVML's counters lag the allocator slightly
    after_decode = _used(gpus)
    out = {"rc": rc, "baseline": base, "load": after_load - base, "context": after_ctx - base,
           "increase": after_decode - base, "n_ctx": ctx.n_ctx, "n_prompt": n,
           "n_gpu_layers": n_gpu_layers}
    batch.close()
    ctx.close()
    model.close()
    gpus.close()
    return out


def used_now() -> int:
    """NVML's used memory on all GPUs now."""
    from core.telemetry.power.nvml import NvmlGpus

    gpus = NvmlGpus()
    try:
        return _used(gpus)
    finally:
        gpus.close()


def wait_for_baseline(baseline: int, timeout: float = 15.0) -> int:
    """Block until NVML's used memory is back near ``baseline`` (the last probe's memory
    freed); returns the used bytes now."""
    from core.telemetry.power.nvml import NvmlGpus

    gpus = NvmlGpus()
    try:
        deadline = time.monotonic() + timeout
        used = _used(gpus)
        while used > baseline + (32 << 20) and time.monotonic() < deadline:
            time.sleep(0.25)
            used = _used(gpus)
        return used
    finally:
        gpus.close()


def measure(path: Path, n_ctx: int, n_gpu_layers: int = -1, timeout: float = 300
            ) -> dict[str, Any]:
    """Run :func:`probe` in a fresh interpreter; raises RuntimeError with its stderr."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), root]))}
    proc = subprocess.run([sys.executable, "-m", "bench.gpu.vram_probe", str(path),
                           str(n_ctx), str(n_gpu_layers)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the VRAM probe failed: {proc.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    layers = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    print(json.dumps(probe(Path(sys.argv[1]), int(sys.argv[2]), layers)))
