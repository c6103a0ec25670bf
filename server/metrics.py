"""``GET /metrics``: Prometheus text exposition, written by hand (a few series, no client
library): requests by endpoint and status, tokens in and out, queue depth, busy sequences,
and histograms of time to first token and per-request decode speed."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from core.engine.metrics import RequestMetrics

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOK_S_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out += [f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return out


class ServerMetrics:
    """Thread-safe counters; ``gauges`` reads live values (queue depth, busy sequences)."""

    def __init__(self, gauges: Callable[[], dict[str, float]] | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tok_s = Histogram(TOK_S_BUCKETS)
        self.gauges = gauges or (lambda: {})

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def observe_generation(self, metrics: RequestMetrics) -> None:
        with self._lock:
            self.prompt_tokens += metrics.prompt_tokens
            self.completion_tokens += metrics.decode_tokens
            if metrics.decode_tokens:
                self.ttft.observe(metrics.ttft_ms / 1000)
            if metrics.decode_tok_s > 0:
                self.tok_s.observe(metrics.decode_tok_s)

    def count_completion_tokens(self, n: int) -> None:
        """Tokens of a request that ended without the engine's metrics (a client that
        left, an engine that failed): they were generated all the same."""
        with self._lock:
            self.completion_tokens += max(0, n)

    def exposition(self) -> str:
        with self._lock:
            lines = ["# HELP hearth_requests_total HTTP requests by endpoint and status.",
                     "# TYPE hearth_requests_total counter"]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'hearth_requests_total{{endpoint="{endpoint}",status="{status}"}}'
                             f" {n}")
            lines += ["# HELP hearth_prompt_tokens_total Prompt tokens of finished requests.",
                      "# TYPE hearth_prompt_tokens_total counter",
                      f"hearth_prompt_tokens_total {self.prompt_tokens}",
                      "# HELP hearth_completion_tokens_total Generated tokens.",
                      "# TYPE hearth_completion_tokens_total counter",
                      f"hearth_completion_tokens_total {self.completion_tokens}"]
            for name, value in sorted(self.gauges().items()):
                lines += [f"# TYPE hearth_{name} gauge", f"hearth_{name} {value:g}"]
            lines += ["# HELP hearth_ttft_seconds Time to first token.",
                      "# TYPE hearth_ttft_seconds histogram", *self.ttft.lines(
                          "hearth_ttft_seconds"),
                      "# HELP hearth_decode_tokens_per_second Decode speed per request.",
                      "# TYPE hearth_decode_tokens_per_second histogram",
                      *self.tok_s.lines("hearth_decode_tokens_per_second")]
        return "\n".join(lines) + "\n"
