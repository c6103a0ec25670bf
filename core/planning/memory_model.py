"""Predict host RAM and VRAM for a load, from the model's own metadata.

Every term follows what llama.cpp 0.3.36 (the vendored sources) does, checked against real
loads (``measure_host_memory`` below; ``bench/planner_verify.py`` prints the table):

* weights: per-tensor bytes from the GGUF header. Layer ``il`` is on the GPU when
  ``il >= n_layer + 1 - n_gpu_layers`` (llama-model.cpp, ``i_gpu_start``); the output head is
  "layer n_layer"; the token embedding always stays on the CPU. A model without
  ``output.weight`` (tied head, e.g. Gemma 3) gets a second copy of ``token_embd`` on the GPU
  when the output layer is offloaded (TENSOR_DUPLICATED).
* with mmap (the default) the CPU weights are file pages; llama.cpp populates the mapping,
  so they all count in RSS. On CPU, Q4_0/Q4_K/IQ4_NL matrices are also copied into the
  ``CPU_REPACK`` buffer (measured: exactly the bytes of those tensors), doubling their cost.
* KV cache: ``n_ctx`` padded to 256; per layer ``n_embd_k_gqa·bytes(type_k) +
  n_embd_v_gqa·bytes(type_v)`` per cell; sliding-window layers get
  ``pad256(min(n_ctx, n_swa·n_seq + n_ubatch))`` cells unless ``swa_full``
  (llama-kv-cache-iswa.cpp). The buffer is cleared at creation, so it is all resident.
* compute buffer: llama.cpp *reserves* the worst-case prompt graph, whose peak is usually the
  logits of ``n_ubatch`` outputs (``n_vocab·n_ubatch·4`` B: 512 MiB for Gemma 3's 262k vocab).
  On a GPU that reserve is real VRAM. On the CPU it is plain malloc: only the pages a decode
  touches become resident, i.e. the activations of one ubatch plus one row of logits, which
  is what the host estimate counts (the reserve is reported alongside).
* fixed costs: the vocabulary's in-memory tables (~160 B per token, measured on Gemma 3),
  the output buffer (``n_vocab·4`` B per sequence) and KV cell bookkeeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.gguf.info import ModelInfo, type_size

MiB = 1 << 20
# Types the CPU backend repacks into interleaved layouts (ggml-cpu/repack.cpp) on x86-64
# with AVX2 and on ARM with dot-product support: a copy of each such matrix.
REPACK_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})
VOCAB_BYTES_PER_TOKEN = 160  # llama_vocab's token tables, measured (43 MiB for 262,144)
FIXED_OVERHEAD = 2 * MiB
KV_CELL_OVERHEAD = 40  # llama_kv_cells bookkeeping per cell (pos, seq bitset, shift)
CUDA_CONTEXT_BYTES = 400 * MiB  # CUDA runtime + cuBLAS workspace per GPU (typical, not measured)


def pad(n: int, to: int = 256) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class LoadConfig:
    """The load and context settings a prediction is for (the engine's defaults)."""

    n_ctx: int = 4096
    n_gpu_layers: int = 0  # -1 = every layer and the output head
    type_k: str = "F16"
    type_v: str = "F16"
    flash_attn: bool | None = None  # None = llama.cpp's "auto" (on where supported)
    n_batch: int = 512
    n_ubatch: int = 512
    n_seq_max: int = 1
    swa_full: bool = False
    use_mmap: bool = True
    cpu_repack: bool = True


@dataclass
class MemoryEstimate:
    """Predicted bytes on the host and on the GPU, with the parts that make them up."""

    host_bytes: int
    vram_bytes: int
    n_ctx: int  # padded, as llama.cpp will create it
    gpu_layers: int  # repeating layers on the GPU
    n_layer: int
    output_on_gpu: bool
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (host, vram)
    compute_reserved: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def gpu_layer_range(n_layer: int, n_gpu_layers: int) -> tuple[int, bool]:
    """(repeating layers on the GPU, output head on the GPU) for llama.cpp's n_gpu_layers.

    llama.cpp counts the output head as layer ``n_layer`` and offloads the *last* k of the
    ``n_layer + 1`` (src/llama-model.cpp, ``i_gpu_start = n_layer + 1 - k``): the head goes
    first, then k - 1 repeating layers."""
    k = n_layer + 1 if n_gpu_layers < 0 else min(n_gpu_layers, n_layer + 1)
    return max(0, k - 1), k >= 1


def kv_cache_bytes(info: ModelInfo, cfg: LoadConfig) -> tuple[list[int], int, int]:
    """Per-layer KV bytes, and the cell counts of the full and sliding-window caches."""
    n_ctx = pad(cfg.n_ctx)
    n_ubatch = min(cfg.n_ubatch, cfg.n_batch, n_ctx)
    n_swa_cells = n_ctx
    if info.n_swa > 0 and not cfg.swa_full:
        n_swa_cells = pad(min(n_ctx, info.n_swa * cfg.n_seq_max + n_ubatch))
    bk, bv = type_size(cfg.type_k), type_size(cfg.type_v)
    per_layer = []
    for il in range(info.n_layer):
        cells = n_swa_cells if info.swa_layers and info.swa_layers[il] else n_ctx
        per_cell = info.n_embd_k_gqa(il) * bk + info.n_embd_v_gqa(il) * bv
        per_layer.append(int(cells * per_cell))
    return per_layer, n_ctx, n_swa_cells


def kv_bytes_per_token(info: ModelInfo, type_k: str = "F16", type_v: str = "F16") -> int:
    """KV bytes one token of context costs in the full-attention layers."""
    bk, bv = type_size(type_k), type_size(type_v)
    return int(sum(
        info.n_embd_k_gqa(il) * bk + info.n_embd_v_gqa(il) * bv
        for il in range(info.n_layer)
        if not (info.swa_layers and info.swa_layers[il])
    ))


def activation_bytes(info: ModelInfo, n_tokens: int, n_kv: int, flash_attn: bool) -> int:
    """Peak live activations of one ubatch: FFN and attention intermediates (f32)."""
    n_q = info.n_head * info.n_embd_head_k
    width = 3 * info.n_ff + 4 * info.n_embd + 3 * n_q
    total = n_tokens * width * 4
    if not flash_attn:
        total += info.n_head * n_kv * n_tokens * 4  # the KQ score matrix
    return total


def _weights(info: ModelInfo, cfg: LoadConfig) -> tuple[int, int, int]:
    """(host weight bytes, repack copy bytes, vram weight bytes)."""
    n_gpu, out_gpu = gpu_layer_range(info.n_layer, cfg.n_gpu_layers)
    first_gpu = info.n_layer - n_gpu
    tied = info.tensor("output.weight") is None
    host = repack = vram = 0
    for t in info.tensors:
        il = t.layer
        on_gpu = (il is not None and il >= first_gpu) or (
            il is None and out_gpu and not t.name.startswith("token_embd")
        )
        if on_gpu:
            vram += t.n_bytes
            continue
        host += t.n_bytes
        is_matrix = len(t.shape) >= 2 and t.shape[1] % 8 == 0
        if (cfg.cpu_repack and t.type in REPACK_TYPES and is_matrix
                and not t.name.startswith("token_embd")):
            repack += t.n_bytes
    if tied and out_gpu:
        emb = info.tensor("token_embd.weight")
        vram += emb.n_bytes if emb else 0
    return host, repack, vram


def predict(
    info: ModelInfo,
    cfg: LoadConfig | None = None,
    draft: ModelInfo | None = None,
    gpu_present: bool | None = None,
) -> MemoryEstimate:
    """Host RAM and VRAM a load of ``info`` (plus an optional draft model) will use.

    ``gpu_present`` decides whether the CUDA context cost is counted; by default it is
    counted whenever anything is offloaded.
    """
    cfg = cfg or LoadConfig()
    n_gpu, out_gpu = gpu_layer_range(info.n_layer, cfg.n_gpu_layers)
    offload = n_gpu > 0 or out_gpu
    fa = True if cfg.flash_attn is None else cfg.flash_attn
    parts: dict[str, tuple[int, int]] = {}

    w_host, repack, w_vram = _weights(info, cfg)
    parts["weights"] = (w_host, w_vram)
    if repack:
        parts["cpu repack copy"] = (repack, 0)

    per_layer, n_ctx, n_swa_cells = kv_cache_bytes(info, cfg)
    first_gpu = info.n_layer - n_gpu
    kv_host = sum(per_layer[:first_gpu])
    kv_vram = sum(per_layer[first_gpu:])
    parts["kv cache"] = (kv_host, kv_vram)

    n_full = sum(1 for s in info.swa_layers if not s) if info.swa_layers else info.n_layer
    cells = n_ctx * (1 if n_full else 0) + (n_swa_cells if info.n_swa > 0 else 0)
    fixed = (FIXED_OVERHEAD + VOCAB_BYTES_PER_TOKEN * info.vocab_size
             + KV_CELL_OVERHEAD * cells + info.vocab_size * 4 * cfg.n_seq_max)
    parts["runtime (vocab, output buffer, kv cells)"] = (fixed, 0)

    n_ub = min(cfg.n_ubatch, cfg.n_batch, n_ctx)
    act = activation_bytes(info, n_ub, n_ctx, fa)
    logits_reserve = info.vocab_size * n_ub * 4 + 2 * info.n_embd * n_ub * 4
    reserved = max(act, logits_reserve)
    if offload:
        # The GPU holds the reserved graph (logits only if the head is there); the CPU part
        # of the graph (embedding lookup, CPU layers) stays small.
        gpu_compute = reserved if out_gpu else act
        host_compute = n_ub * info.n_embd * 4 * 2 + (0 if out_gpu else info.vocab_size * 4)
        parts["compute buffer"] = (host_compute, gpu_compute)
        use_ctx = gpu_present if gpu_present is not None else True
        if use_ctx:
            parts["cuda context"] = (0, CUDA_CONTEXT_BYTES)
    else:
        parts["compute buffer (touched)"] = (act + info.vocab_size * 4, 0)

    if draft is not None:
        d = predict(draft, cfg, None, gpu_present=False)
        parts["draft model"] = (d.host_bytes, d.vram_bytes)

    host = sum(h for h, _ in parts.values())
    vram = sum(v for _, v in parts.values())
    return MemoryEstimate(
        host_bytes=host, vram_bytes=vram, n_ctx=n_ctx, gpu_layers=n_gpu, n_layer=info.n_layer,
        output_on_gpu=out_gpu, parts=parts, compute_reserved=reserved,
    )


# --- measurement: a real load in a fresh process --------------------------------------------


def measure_host_memory(path: Path | str, n_ctx: int, n_prompt: int | None = None,
                        cfg: LoadConfig | None = None, timeout: float = 300) -> dict:
    """Load ``path`` in a fresh interpreter, decode one ubatch, report the RSS increase.

    A fresh process keeps the baseline clean (no other model's pages). The prompt is one
    full ubatch (``min(n_ctx, n_ubatch)`` tokens, logits for the last only, as the engine
    asks), the worst case the compute buffer is sized for.
    """
    cfg = cfg or LoadConfig(n_ctx=n_ctx)
    n_prompt = n_prompt or min(pad(n_ctx), cfg.n_ubatch, cfg.n_batch)
    args = [sys.executable, "-m", "core.planning.memory_model", str(path), str(n_ctx),
            str(n_prompt),
            json.dumps({"swa_full": cfg.swa_full, "n_batch": cfg.n_batch,
                        "n_ubatch": cfg.n_ubatch, "type_k": cfg.type_k, "type_v": cfg.type_v,
                        "use_mmap": cfg.use_mmap})]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                         check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"measurement failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def _ggml_type(name: str) -> int:
    from gguf import GGMLQuantizationType

    return int(GGMLQuantizationType[name.upper()])


def _measure_worker(path: str, n_ctx: int, n_prompt: int, opts: dict) -> dict:
    """Runs inside the fresh process: backend init, load, context, one decode."""
    import ctypes

    import llama_cpp
    import psutil

    @llama_cpp.llama_log_callback
    def _quiet(_level: int, _text: bytes, _user: ctypes.c_void_p) -> None:
        return None

    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    proc = psutil.Process()
    before = proc.memory_info().rss
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.use_mmap = opts.get("use_mmap", True)
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    if not model:
        raise SystemExit(f"could not load {path}")
    after_load = proc.memory_info().rss
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch, cp.n_ubatch = opts.get("n_batch", 512), opts.get("n_ubatch", 512)
    cp.swa_full = opts.get("swa_full", False)
    cp.type_k, cp.type_v = _ggml_type(opts["type_k"]), _ggml_type(opts["type_v"])
    cp.n_threads = cp.n_threads_batch = min(2, os.cpu_count() or 1)
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if not ctx:
        raise SystemExit("could not create the context")
    after_ctx = proc.memory_info().rss
    batch = llama_cpp.llama_batch_init(n_prompt, 0, 1)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    for i in range(n_prompt):
        batch.token[i] = 1000 + (i * 7919) % (n_vocab - 1000)
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = i == n_prompt - 1
    batch.n_tokens = n_prompt
    rc = llama_cpp.llama_decode(ctx, batch)
    after = proc.memory_info().rss
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return {"rc": rc, "baseline": before, "load": after_load - before,
            "context": after_ctx - before, "increase": after - before, "n_prompt": n_prompt}


if __name__ == "__main__":
    print(json.dumps(_measure_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                     json.loads(sys.argv[4]))))
