"""Cost per query here against the cloud: the seed's analysis with this machine's numbers.

The seed's example: the cloud at $0.01 per 1K tokens (a 100-token query: $0.001); the edge
box at $2000 amortized over 6 months ($333/month) plus electricity and maintenance, about
$483/month for unlimited queries; break-even 483,000 queries a month, "~16K queries/day" —
so a month is 30 days here too. Hearth replaces the seed's flat electricity line with what
each query draws on this machine (the panel's accounting or the benchmark's J/token, labelled
"estimated" where the power source is a model rather than a meter):

* local monthly cost  = hardware / months + maintenance + queries × energy per query × price
* cloud monthly cost  = queries × tokens per query / 1000 × cloud price
* break-even          = fixed monthly cost / (cloud − local energy cost per query), per day
                        (none when a query's electricity alone costs more than the cloud)

Everything is plain arithmetic on :class:`CostInputs`, so a test can redo it by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.telemetry.accounting import J_PER_KWH

DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class CostInputs:
    """Prices in US dollars; ``joules_per_query`` is this machine's energy for one query of
    ``tokens_per_query`` tokens, ``energy_label`` "measured" or "estimated"."""

    joules_per_query: float
    energy_label: str
    electricity_usd_per_kwh: float
    hardware_usd: float
    amortization_months: int
    maintenance_usd_month: float = 0.0
    cloud_usd_per_1k_tokens: float = 0.01
    tokens_per_query: int = 100
    energy_source: str = ""  # where joules_per_query came from, for the label

    def __post_init__(self) -> None:
        if self.amortization_months < 1:
            raise ValueError("amortization_months must be at least 1")
        if self.tokens_per_query < 1:
            raise ValueError("tokens_per_query must be at least 1")


@dataclass(frozen=True)
class CostReport:
    """The figures the cost view shows, derived from :class:`CostInputs`."""

    inputs: CostInputs

    @property
    def energy_usd_per_query(self) -> float:
        i = self.inputs
        return i.joules_per_query / J_PER_KWH * i.electricity_usd_per_kwh

    @property
    def hardware_usd_month(self) -> float:
        return self.inputs.hardware_usd / self.inputs.amortization_months

    @property
    def fixed_usd_month(self) -> float:
        return self.hardware_usd_month + self.inputs.maintenance_usd_month

    @property
    def cloud_usd_per_query(self) -> float:
        i = self.inputs
        return i.tokens_per_query / 1000.0 * i.cloud_usd_per_1k_tokens

    def local_usd_month(self, queries_per_day: float) -> float:
        return self.fixed_usd_month + queries_per_day * DAYS_PER_MONTH * self.energy_usd_per_query

    def cloud_usd_month(self, queries_per_day: float) -> float:
        return queries_per_day * DAYS_PER_MONTH * self.cloud_usd_per_query

    def local_usd_per_query(self, queries_per_day: float) -> float:
        """Electricity plus this query's share of the month's fixed costs."""
        if queries_per_day <= 0:
            raise ValueError("queries_per_day must be > 0")
        return self.local_usd_month(queries_per_day) / (queries_per_day * DAYS_PER_MONTH)

    def local_usd_per_1k_tokens(self, queries_per_day: float) -> float:
        return self.local_usd_per_query(queries_per_day) / self.inputs.tokens_per_query * 1000

    @property
    def energy_usd_per_1k_tokens(self) -> float:
        """Electricity alone per 1,000 tokens (the marginal cost of one more query)."""
        return self.energy_usd_per_query / self.inputs.tokens_per_query * 1000

    @property
    def break_even_queries_per_day(self) -> float | None:
        """Queries a day above which running here is cheaper than the cloud (None: never,
        a query's electricity alone costs at least the cloud's price; 0: always)."""
        margin = self.cloud_usd_per_query - self.energy_usd_per_query
        if margin <= 0:
            return None
        return self.fixed_usd_month / (DAYS_PER_MONTH * margin)

    def curve(self, max_queries_per_day: float, points: int = 50
              ) -> list[tuple[float, float, float]]:
        """(queries/day, local $/month, cloud $/month) from 0 to ``max_queries_per_day``."""
        step = max_queries_per_day / max(1, points - 1)
        return [(q, self.local_usd_month(q), self.cloud_usd_month(q))
                for q in (i * step for i in range(points))]

    def plot_range(self) -> float:
        """A queries/day axis that shows the crossing: 2.5 × break-even, or the seed's 50K."""
        even = self.break_even_queries_per_day
        return max(100.0, 2.5 * even) if even else 50_000.0

    def to_dict(self, queries_per_day: float | None = None) -> dict[str, Any]:
        q = queries_per_day or self.break_even_queries_per_day or 1000.0
        return {
            "inputs": asdict(self.inputs),
            "energy_usd_per_query": self.energy_usd_per_query,
            "energy_usd_per_1k_tokens": self.energy_usd_per_1k_tokens,
            "hardware_usd_month": self.hardware_usd_month,
            "fixed_usd_month": self.fixed_usd_month,
            "cloud_usd_per_query": self.cloud_usd_per_query,
            "break_even_queries_per_day": self.break_even_queries_per_day,
            "at_queries_per_day": q,
            "local_usd_per_query": self.local_usd_per_query(q),
            "local_usd_per_1k_tokens": self.local_usd_per_1k_tokens(q),
            "local_usd_month": self.local_usd_month(q),
            "cloud_usd_month": self.cloud_usd_month(q),
        }


def energy_per_query(tokens_per_query: int, *, session_joules: float | None = None,
                     session_tokens: int = 0, session_label: str = "",
                     bench_j_per_token: float | None = None, bench_label: str = ""
                     ) -> tuple[float, str, str] | None:
    """(joules per query, label, source): the panel's own session measurement when it has
    one (its joules per generated token × tokens per query), else the benchmark's J/token,
    else None (nothing measured yet)."""
    if session_joules is not None and session_tokens > 0:
        per_token = session_joules / session_tokens
        return per_token * tokens_per_query, session_label or "estimated", "this session"
    if bench_j_per_token is not None:
        return (bench_j_per_token * tokens_per_query, bench_label or "estimated",
                "the benchmark")
    return None
