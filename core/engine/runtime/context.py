"""A llama.cpp context: the KV cache of up to ``n_seq_max`` sequences, and the batches that
fill it.

One wrapper per native handle with an idempotent ``close()``. KV operations take a sequence
id, so the plain loop, the speculator, the draft model and the scheduler all address cells
the same way. The cache is unified (``kv_unified``): every sequence draws from one pool of
``n_ctx`` cells, so a lone chat can use the whole context while several requests share it,
and a prefix can be copied from one sequence to another (``llama_memory_seq_cp``) without
evaluating it again.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np

from core import llama_log
from core.engine.runtime.model import LoadedModel
from core.errors import ContextTooLargeError

# A NULL callback: ctypes wants a CFUNCTYPE instance, and a NULL one makes ggml skip the call.
NO_ABORT = llama_cpp.ggml_abort_callback()


class Context:
    """Owns a ``llama_context``. ``perf`` keeps llama.cpp's own counters (the target's
    metrics cross-check); ``label`` names it in errors ("the draft model")."""

    def __init__(self, model: LoadedModel, *, n_ctx: int, n_batch: int, n_ubatch: int,
                 n_seq_max: int, threads: int, threads_batch: int | None = None,
                 perf: bool = True, label: str = "") -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = min(n_ubatch, n_batch)
        params.n_seq_max = n_seq_max
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = threads_batch or threads
        params.no_perf = not perf
        # Sliding-window layers keep only their window (llama.cpp's default keeps the whole
        # context: 6x the KV memory on Gemma 3); prefix reuse checks what is still cached.
        params.swa_full = False
        position = llama_log.mark()
        ptr = llama_cpp.llama_init_from_model(model.ptr, params)
        if not ptr:
            reason = "; ".join(llama_log.errors_since(position)[-2:]) or "no reason given"
            owner = f"{label} " if label else ""
            raise ContextTooLargeError(
                f"Could not create a {n_ctx}-token context for {owner}{model.path.name} "
                f"({reason}). Try a smaller context.")
        self.ptr: Any = ptr
        self.model = model
        self.mem = llama_cpp.llama_get_memory(ptr)
        self.n_ctx: int = llama_cpp.llama_n_ctx(ptr)
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.threads = threads
        self._rows: dict[int, tuple[int, np.ndarray]] = {}

    # -- KV cells by sequence ------------------------------------------------------------
    def seq_rm(self, seq_id: int, p0: int, p1: int = -1) -> bool:
        """Remove positions [p0, p1) of a sequence (p1 = -1: to the end)."""
        return bool(llama_cpp.llama_memory_seq_rm(self.mem, seq_id, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Make positions [p0, p1) of ``src`` also belong to ``dst`` (cells are shared)."""
        llama_cpp.llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def seq_pos_min(self, seq_id: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_min(self.mem, seq_id))

    def seq_pos_max(self, seq_id: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self.mem, seq_id))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.mem, True)

    # -- evaluation ----------------------------------------------------------------------
    def decode(self, batch: Any) -> int:
        return int(llama_cpp.llama_decode(self.ptr, batch))

    def logits_row(self, i: int) -> np.ndarray:
        """The logits of output ``i`` of the last decode (-1: the last), as a view of
        llama.cpp's own buffer (no copy; valid until the next decode)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ptr, i)
        address = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        cached = self._rows.get(i)
        if cached is None or cached[0] != address:  # llama.cpp reallocated its buffer
            row = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))
            self._rows[i] = cached = (address, row)
        return cached[1]

    def argmax(self, i: int = -1) -> int:
        """The most likely next token at output ``i`` (numpy's first maximum, as greedy)."""
        return int(self.logits_row(i).argmax())

    def set_abort(self, callback: Any) -> None:
        """Install llama.cpp's abort callback (``NO_ABORT`` removes it)."""
        llama_cpp.llama_set_abort_callback(self.ptr, callback, None)

    def close(self) -> None:
        if getattr(self, "ptr", None):
            llama_cpp.llama_free(self.ptr)
            self.ptr = None
            self._rows.clear()


class Batch:
    """A ``llama_batch`` of up to ``capacity`` tokens, each in one sequence."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ptr: Any = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self.ptr.n_tokens = 0

    def add(self, token: int, pos: int, seq_id: int, logits: bool) -> int:
        """Append a token; returns its index (the ``i`` of its logits when requested)."""
        i, b = self.n, self.ptr
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = logits
        self.n = b.n_tokens = i + 1
        return i

    def add_run(self, tokens: list[int], start: int, seq_id: int, last_logits: bool) -> None:
        """Append ``tokens`` at positions ``start``.., logits for the last one if asked."""
        b, i = self.ptr, self.n
        for tok in tokens:
            b.token[i] = tok
            b.pos[i] = start
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = 0
            i += 1
            start += 1
        if last_logits and tokens:
            b.logits[i - 1] = 1
        self.n = b.n_tokens = i

    @property
    def room(self) -> int:
        return self.capacity - self.n

    def close(self) -> None:
        if getattr(self, "ptr", None) is not None:
            llama_cpp.llama_batch_free(self.ptr)
            self.ptr = None
