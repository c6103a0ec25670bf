"""Machine-dependent defaults and guards for loading: threads and context memory."""

from __future__ import annotations

import llama_cpp
import psutil

from core.engine.runtime.model import LoadedModel
from core.errors import ContextTooLargeError


def default_threads() -> int:
    """One thread per physical core: llama.cpp's decode is memory-bound and hyper-threads
    only add contention."""
    return max(1, psutil.cpu_count(logical=False) or psutil.cpu_count() or 1)


_KV_BYTES_PER_ELEMENT = 2  # f16 keys and values, llama.cpp's default cache type


def kv_cache_upper_bound(model: LoadedModel, n_ctx: int) -> int:
    """Bytes of an f16 KV cache with every layer holding ``n_ctx`` positions: from the
    loaded model's metadata, instantly. Sliding-window layers hold fewer, so this bounds
    the real size from above."""
    arch = model.architecture
    n_head_kv = max(1, int(model.meta(f"{arch}.attention.head_count_kv") or 1))
    n_head = max(1, int(model.meta(f"{arch}.attention.head_count") or 1))
    n_embd = int(model.meta(f"{arch}.embedding_length") or 0)
    k_len = int(model.meta(f"{arch}.attention.key_length") or n_embd // n_head)
    v_len = int(model.meta(f"{arch}.attention.value_length") or n_embd // n_head)
    per_token_layer = n_head_kv * (k_len + v_len) * _KV_BYTES_PER_ELEMENT
    return model.n_layer * n_ctx * per_token_layer


def kv_cache_bytes(model: LoadedModel, n_ctx: int) -> int:
    """Bytes of the f16 KV cache for ``n_ctx`` positions, sized as llama.cpp sizes it
    (sliding-window layers hold only their window: the planner's memory model)."""
    from core.gguf.reader import read_local
    from core.planning.memory_model import LoadConfig
    from core.planning.memory_model import kv_cache_bytes as per_layer_kv

    per_layer, _, _ = per_layer_kv(read_local(model.path), LoadConfig(n_ctx=n_ctx))
    return sum(per_layer)


def host_kv_share(model: LoadedModel, n_gpu_layers: int) -> float:
    """The part of the KV cache that lives in host memory: the layers llama.cpp keeps on
    the CPU (all of them on a build without GPU offload, whatever was asked)."""
    if n_gpu_layers == 0 or not llama_cpp.llama_supports_gpu_offload():
        return 1.0
    on_gpu = model.n_layer if n_gpu_layers < 0 else min(n_gpu_layers, model.n_layer)
    return 1.0 - on_gpu / max(1, model.n_layer)


def check_context_fits(model: LoadedModel, n_ctx: int, n_gpu_layers: int) -> None:
    """Refuse a context that cannot fit, before llama.cpp tries: on Linux an allocation
    larger than free memory can succeed and then get the process killed when touched.
    Only the host's part is checked here: the offloaded layers' cells go to the GPU, whose
    allocator refuses cleanly (llama.cpp then names the failure)."""
    available = psutil.virtual_memory().available
    share = host_kv_share(model, n_gpu_layers)
    # The exact size needs the file's header (a second or so for a 262k vocabulary): only
    # paid when the instant upper bound says the context might not fit.
    need = int(kv_cache_upper_bound(model, n_ctx) * share)
    if need > available:
        need = int(kv_cache_bytes(model, n_ctx) * share)
    if need > available:
        raise ContextTooLargeError(
            f"A {n_ctx:,}-token context needs {need / 2**30:.1f} GiB for its KV cache, "
            f"but only {available / 2**30:.1f} GiB of memory is free. Choose a smaller context "
            f"(the model was trained for {model.n_ctx_train:,} tokens)."
        )
    if n_ctx > model.n_ctx_train:
        raise ContextTooLargeError(
            f"A {n_ctx:,}-token context is longer than {model.path.name} was trained for "
            f"({model.n_ctx_train:,} tokens); choose at most {model.n_ctx_train:,}."
        )
