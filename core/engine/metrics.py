"""Per-request timing, taken with ``time.perf_counter_ns`` as the request runs.

The seed's latency breakdown (tokenize, model inference, de-tokenize) is kept as separate
clocks so the panel can show where the time went. ``llama_*`` fields are llama.cpp's own
counters (``llama_perf_context``, reset per request) and serve as a cross-check: if our
prefill/decode clocks disagree with llama.cpp's, time is leaking outside the kernels.

Conventions: ``ttft_ms`` runs from the request's arrival to the first generated token;
``decode_tok_s`` counts the tokens after the first over the time from the first to the last
(the first token belongs to the prefill), which is what llama-bench's ``tg`` measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NS_PER_MS = 1_000_000


@dataclass
class RequestMetrics:
    """Everything measured about one request; all times in milliseconds."""

    template_ms: float = 0.0
    tokenize_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefill_tokens: int = 0
    prefill_ms: float = 0.0
    ttft_ms: float = 0.0
    decode_tokens: int = 0
    decode_ms: float = 0.0
    detokenize_ms: float = 0.0
    total_ms: float = 0.0
    token_latencies_ms: list[float] = field(default_factory=list)
    llama_prefill_ms: float = 0.0
    llama_prefill_tokens: int = 0
    llama_decode_ms: float = 0.0
    llama_decode_tokens: int = 0
    speculative: dict[str, Any] | None = None
    # Its share of the engine when requests run together: tokens it put into decodes, and
    # the decode wall time split by tokens evaluated (telemetry shares energy by it).
    evaluated_tokens: int = 0
    engine_share_ms: float = 0.0
    concurrent: bool = False  # other requests ran beside it at some point
    queued_ms: float = 0.0  # waiting for a free sequence or KV room before it started
    # The request's window on the CLOCK_MONOTONIC clock shared by every process, so the
    # parent can line it up with its power samples (energy accounting).
    t_start_ns: int = 0
    t_end_ns: int = 0

    @property
    def prefill_tok_s(self) -> float:
        return self.prefill_tokens / (self.prefill_ms / 1000) if self.prefill_ms > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        n = self.decode_tokens - 1
        return n / (self.decode_ms / 1000) if n > 0 and self.decode_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["prefill_tok_s"] = round(self.prefill_tok_s, 3)
        out["decode_tok_s"] = round(self.decode_tok_s, 3)
        return out

