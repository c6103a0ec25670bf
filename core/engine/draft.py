"""A draft model: a second, smaller GGUF with its own context that guesses k tokens ahead.

The draft keeps its KV cache between rounds and requests like the target does, with the list
of tokens it holds (``cached``): each round it first evaluates whatever the target committed
that it has not seen (usually one or two tokens, the whole prompt on the first round), then
samples greedily and evaluates its own guesses one by one. After the target's verification
:meth:`DraftModel.rollback` drops the rejected guesses with ``llama_memory_seq_rm``.

Sliding-window (SWA) caches: with ``swa_full=False`` llama.cpp only overwrites a cell once it
is outside the window of the newest position *before* a batch, so removing the tail of the
sequence never needs a cell that is gone; reusing a prefix across requests checks
``llama_memory_seq_pos_min`` as the engine does.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp

from core.engine import llama_log
from core.engine.kvcache import keep_prefix
from core.engine.model import LoadedModel
from core.errors import ContextTooLargeError, EngineError


def new_context(model: LoadedModel, n_ctx: int, n_batch: int, threads: int) -> object:
    """A one-sequence context as the engine makes it (SWA layers keep only their window)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = n_batch
    params.n_seq_max = 1
    params.n_threads = threads
    params.n_threads_batch = threads
    params.no_perf = True
    params.swa_full = False
    position = llama_log.mark()
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    if not ctx:
        reason = "; ".join(llama_log.errors_since(position)[-2:]) or "no reason given"
        raise ContextTooLargeError(f"Could not create a {n_ctx}-token context for the draft "
                                   f"model {model.path.name} ({reason}). Try a smaller context.")
    return ctx


class DraftModel:
    """Owns the draft model, its context, a batch and a greedy sampler; ``close()`` frees."""

    def __init__(self, path: Path, n_ctx: int, n_batch: int, threads: int,
                 n_gpu_layers: int = -1) -> None:
        self.model = LoadedModel(Path(path), n_gpu_layers)
        try:
            self.ctx = new_context(self.model, n_ctx, n_batch, threads)
        except BaseException:
            self.model.close()
            raise
        self.n_batch = n_batch
        self._mem = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._greedy = llama_cpp.llama_sampler_init_greedy()
        self.cached: list[int] = []

    @property
    def name(self) -> str:
        return self.model.path.name

    def _decode(self, tokens: list[int], start: int) -> None:
        """Evaluate ``tokens`` at positions ``start``.., logits for the last one only."""
        batch = self._batch
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 0
        batch.logits[len(tokens) - 1] = 1
        batch.n_tokens = len(tokens)
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            self.reset()
            raise EngineError(f"llama.cpp failed to decode with the draft model (code {rc}).")

    def _keep_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix of ``tokens`` (never all of it: the last token
        must be evaluated to have logits); returns its length."""
        n = keep_prefix(self._mem, self.cached, tokens, self.model.n_swa)
        if n == 0:
            self.reset()
        return n

    def draft(self, history: list[int], k: int) -> list[int]:
        """Up to ``k`` greedy guesses of what follows ``history`` (all tokens the target has
        committed plus its last sampled one). Leaves the guesses but the last in the cache."""
        n = self._keep_prefix(history)
        for start in range(n, len(history), self.n_batch):
            chunk = history[start : start + self.n_batch]
            self._decode(chunk, start)
            self.cached.extend(chunk)
        out: list[int] = []
        sample, ctx = llama_cpp.llama_sampler_sample, self.ctx
        while True:
            token = sample(self._greedy, ctx, -1)
            out.append(token)
            if len(out) >= k:
                return out
            self._decode([token], len(self.cached))
            self.cached.append(token)

    def rollback(self, n_keep: int) -> None:
        """Forget everything past the first ``n_keep`` cached tokens."""
        if n_keep < len(self.cached):
            if not llama_cpp.llama_memory_seq_rm(self._mem, 0, n_keep, -1):
                self.reset()
                return
            del self.cached[n_keep:]

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
        self.cached = []

    def close(self) -> None:
        if getattr(self, "_greedy", None) is not None:
            llama_cpp.llama_sampler_free(self._greedy)
            self._greedy = None
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None) is not None:
            self.model.close()
