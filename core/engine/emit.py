"""What happens to each generated token, for every decoding loop.

The plain loop and the speculative loop produce tokens differently but must end requests by
the same rules: stamp the token's latency, stop at end-of-generation, detokenize into whole
characters while watching for stop strings, and stop at the length, context or cancel limit.
"""

from __future__ import annotations

import threading
import time

from core.engine.metrics import NS_PER_MS, RequestMetrics
from core.engine.model import LoadedModel
from core.engine.protocol import GenerationRequest
from core.engine.textstream import TextStream


class TokenEmitter:
    """``accept(token)`` -> (text to show or "", finish reason or None)."""

    __slots__ = ("_cancel", "_detok_ns", "_extra_stop", "_latencies", "_model", "_n_ctx",
                 "_n_prompt", "_request", "_st", "_stream", "metrics", "n_gen", "t_prev")

    def __init__(self, model: LoadedModel, extra_stop: frozenset[int], request: GenerationRequest,
                 st: object, n_prompt: int, n_ctx: int, cancel: threading.Event) -> None:
        self._model, self._extra_stop, self._request = model, extra_stop, request
        self._st = st  # the request's run state: t_start, t_first, t_last, metrics, stream
        self.metrics: RequestMetrics = st.metrics  # type: ignore[attr-defined]
        self._stream: TextStream = st.stream  # type: ignore[attr-defined]
        self._latencies = self.metrics.token_latencies_ms
        self._n_prompt, self._n_ctx, self._cancel = n_prompt, n_ctx, cancel
        self.n_gen = 0
        self._detok_ns = 0
        self.t_prev: int = st.t_start  # type: ignore[attr-defined]

    def accept(self, token: int) -> tuple[str, str | None]:
        now = time.perf_counter_ns()
        self._latencies.append((now - self.t_prev) / NS_PER_MS)
        self.t_prev = now
        st = self._st
        if self.n_gen == 0:
            st.t_first = now  # type: ignore[attr-defined]
        st.t_last = now  # type: ignore[attr-defined]
        self.n_gen += 1
        metrics = self.metrics
        metrics.decode_tokens = self.n_gen
        request = self._request
        if (self._model.is_eog(token) or token in self._extra_stop) and not request.ignore_eos:
            return "", "eos"
        d0 = time.perf_counter_ns()
        text = self._stream.feed(self._model.piece(token))
        self._detok_ns += time.perf_counter_ns() - d0
        metrics.detokenize_ms = self._detok_ns / NS_PER_MS
        if self._stream.stopped:
            return text, "stop"
        if self.n_gen >= request.max_tokens:
            return text, "length"
        if self._n_prompt + self.n_gen >= self._n_ctx:
            return text, "context"
        if self._cancel.is_set():
            return text, "cancelled"
        return text, None
