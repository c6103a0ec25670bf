"""What happens to each generated token, for every decoding loop.

The plain loop, the speculative loop and the scheduler produce tokens differently but must
end requests by the same rules: stamp the token's latency, stop at end-of-generation,
detokenize into whole characters while watching for stop strings, and stop at the length,
context or cancel limit.
"""

from __future__ import annotations

import time

from core.engine.metrics import NS_PER_MS
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.sequence import Sequence


class TokenEmitter:
    """``accept(token)`` -> (text to show or "", finish reason or None) for one sequence's
    running request."""

    __slots__ = ("_detok_ns", "_extra_stop", "_latencies", "_model", "_n_ctx", "_seq",
                 "n_gen", "t_prev")

    def __init__(self, model: LoadedModel, extra_stop: frozenset[int], seq: Sequence,
                 n_ctx: int) -> None:
        self._model, self._extra_stop, self._seq, self._n_ctx = model, extra_stop, seq, n_ctx
        self._latencies = seq.metrics.token_latencies_ms
        self.n_gen = 0
        self._detok_ns = 0
        self.t_prev: int = seq.t_start

    def accept(self, token: int) -> tuple[str, str | None]:
        now = time.perf_counter_ns()
        self._latencies.append((now - self.t_prev) / NS_PER_MS)
        self.t_prev = now
        seq = self._seq
        if self.n_gen == 0:
            seq.t_first = now
        seq.t_last = now
        self.n_gen += 1
        seq.generated.append(token)
        metrics = seq.metrics
        metrics.decode_tokens = self.n_gen
        request = seq.request
        assert request is not None
        if (self._model.is_eog(token) or token in self._extra_stop) and not request.ignore_eos:
            return "", "eos"
        d0 = time.perf_counter_ns()
        text = seq.stream.feed(self._model.piece(token))
        self._detok_ns += time.perf_counter_ns() - d0
        metrics.detokenize_ms = self._detok_ns / NS_PER_MS
        if seq.stream.stopped:
            return text, "stop"
        if self.n_gen >= request.max_tokens:
            return text, "length"
        if seq.n_prompt + self.n_gen >= self._n_ctx:
            return text, "context"
        if seq.cancel.is_set():
            return text, "cancelled"
        return text, None
