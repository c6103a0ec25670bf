"""One sequence of a context: its id, the tokens its KV cells hold, and the request it serves.

The plain loop, the speculator and the scheduler share this one public state instead of
reaching into each other: ``tokens`` is always exactly what the cache holds for ``seq_id``
(prefix reuse across requests depends on it), and every KV change goes through the methods
below, which keep the two in step.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import llama_cpp

from core.engine.api import GenerationRequest
from core.engine.metrics import RequestMetrics
from core.engine.runtime.context import Context
from core.engine.runtime.textstream import TextStream


class Sequence:
    """KV bookkeeping for ``seq_id`` of ``context``, plus the running request's state
    (set by :meth:`begin`, released by :meth:`end`)."""

    def __init__(self, context: Context, seq_id: int, n_swa: int = 0) -> None:
        self.context = context
        self.seq_id = seq_id
        self.n_swa = n_swa
        self.tokens: list[int] = []  # what the KV cache holds for this sequence, in order
        self.last_used = 0.0  # when it last served a request (least recently used goes first)
        # The last request opted out of the cache: its cells go before the next admission.
        self.disposable = False
        # The running request (None between requests).
        self.request: GenerationRequest | None = None
        self.chain: Any = None  # its llama.cpp sampler chain
        self.stream = TextStream()
        self.metrics = RequestMetrics()
        self.cancel = threading.Event()
        self.n_prompt = 0
        self.generated: list[int] = []  # token ids the running request emitted
        self.t_start = self.t_first = self.t_last = 0
        self.prefill_ns = 0

    # -- KV cells --------------------------------------------------------------------
    def keep_prefix(self, tokens: list[int]) -> int:
        """Trim the cache to the longest prefix it shares with ``tokens`` — never all of
        ``tokens``: the last one must be evaluated to have logits. Returns the tokens kept;
        0 means nothing is reusable (nothing shared, a sliding window already dropped
        positions the new tokens attend to, or llama.cpp refused the partial removal), and
        the sequence is then empty."""
        cached = self.tokens
        if len(cached) < len(tokens) and tokens[: len(cached)] == cached:
            return len(cached)  # a pure extension: nothing to remove, one compare in C
        n, limit = 0, min(len(cached), len(tokens) - 1)
        while n < limit and cached[n] == tokens[n]:
            n += 1
        if n and self.usable_prefix(n) and self.context.seq_rm(self.seq_id, n, -1):
            del cached[n:]
            return n
        self.clear()
        return 0

    def usable_prefix(self, n: int) -> bool:
        """Whether the first ``n`` cached positions can be extended: a sliding-window cache
        drops cells older than the window, which new tokens at position ``n`` still need."""
        if n <= 0 or n > len(self.tokens):
            return False
        return self.n_swa <= 0 or self.context.seq_pos_min(self.seq_id) <= max(0, n - self.n_swa)

    def truncate(self, n_keep: int) -> None:
        """Forget everything past the first ``n_keep`` tokens (all of it if llama.cpp
        cannot remove a partial range)."""
        if n_keep >= len(self.tokens):
            return
        if not self.context.seq_rm(self.seq_id, n_keep, -1):
            self.clear()
            return
        del self.tokens[n_keep:]

    def clear(self) -> None:
        self.context.seq_rm(self.seq_id, 0, -1)
        self.tokens = []
        self.disposable = False

    def copy_from(self, other: Sequence, n: int) -> None:
        """Share ``other``'s first ``n`` cells (this sequence's own are dropped first)."""
        self.clear()
        self.context.seq_cp(other.seq_id, self.seq_id, 0, n)
        self.tokens = other.tokens[:n]

    # -- the running request -----------------------------------------------------------
    def begin(self, request: GenerationRequest, chain: Any, cancel: threading.Event,
              t_start: int | None = None) -> None:
        self.request, self.chain, self.cancel = request, chain, cancel
        self.stream = TextStream(request.stop)
        self.metrics = RequestMetrics()
        self.t_start = t_start or time.perf_counter_ns()
        self.t_first = self.t_last = self.prefill_ns = 0
        self.n_prompt = 0
        self.generated = []

    def end(self) -> None:
        """Free the request's sampler chain; the cells stay for the next prefix match, or,
        when the request opted out of the cache (``reuse_cache=False``: a cold measurement),
        until the next request is admitted (:func:`admission.admit` drops them)."""
        self.disposable = self.request is not None and not self.request.reuse_cache
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
        self.request = None
        self.last_used = time.monotonic()

    @property
    def busy(self) -> bool:
        return self.request is not None
