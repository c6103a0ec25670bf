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

from core.engine.runtime.context import Batch, Context
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.sequence import Sequence
from core.errors import EngineError


class DraftModel:
    """Owns the draft model, its one-sequence context, a batch and a greedy sampler;
    ``close()`` frees them."""

    def __init__(self, path: Path, n_ctx: int, n_batch: int, threads: int,
                 n_gpu_layers: int = -1) -> None:
        self.model = LoadedModel(Path(path), n_gpu_layers)
        try:
            self.context = Context(self.model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                   n_seq_max=1, threads=threads, perf=False,
                                   label="the draft model")
        except BaseException:
            self.model.close()
            raise
        self.n_batch = n_batch
        self.sequence = Sequence(self.context, 0, self.model.n_swa)
        self._batch = Batch(n_batch)
        self._greedy = llama_cpp.llama_sampler_init_greedy()

    @property
    def name(self) -> str:
        return self.model.path.name

    @property
    def cached(self) -> list[int]:
        """The tokens the draft's KV cache holds."""
        return self.sequence.tokens

    def _decode(self, tokens: list[int], start: int) -> None:
        """Evaluate ``tokens`` at positions ``start``.., logits for the last one only."""
        batch = self._batch
        batch.clear()
        batch.add_run(tokens, start, 0, True)
        rc = self.context.decode(batch.ptr)
        if rc != 0:
            self.reset()
            raise EngineError(f"llama.cpp failed to decode with the draft model (code {rc}).")

    def draft(self, history: list[int], k: int) -> list[int]:
        """Up to ``k`` greedy guesses of what follows ``history`` (all tokens the target has
        committed plus its last sampled one). Leaves the guesses but the last in the cache."""
        seq = self.sequence
        n = seq.keep_prefix(history)
        for start in range(n, len(history), self.n_batch):
            chunk = history[start : start + self.n_batch]
            self._decode(chunk, start)
            seq.tokens.extend(chunk)
        out: list[int] = []
        sample, ctx = llama_cpp.llama_sampler_sample, self.context.ptr
        while True:
            token = sample(self._greedy, ctx, -1)
            out.append(token)
            if len(out) >= k:
                return out
            self._decode([token], len(seq.tokens))
            seq.tokens.append(token)

    def rollback(self, n_keep: int) -> None:
        """Forget everything past the first ``n_keep`` cached tokens."""
        self.sequence.truncate(n_keep)

    def reset(self) -> None:
        self.sequence.clear()

    def close(self) -> None:
        if getattr(self, "_greedy", None) is not None:
            llama_cpp.llama_sampler_free(self._greedy)
            self._greedy = None
        if getattr(self, "_batch", None) is not None:
            self._batch.close()
        if getattr(self, "context", None) is not None:
            self.context.close()
        if getattr(self, "model", None) is not None:
            self.model.close()
