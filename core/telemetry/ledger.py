"""The session's running totals and its CSV export: one row per request.

The panel shows "energy and cost of the last reply and of the session" and can save the
session's requests as CSV; both come from here so the CLI (e.g. a benchmark loop) and the
GUI add requests up the same way. A session mixing measured and estimated requests is
labelled "estimated" as a whole.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.telemetry.accounting import RequestAccounting

CSV_COLUMNS = (
    "request", "total_ms", "ttft_ms", "decode_tok_s", "prompt_tokens", "generated_tokens",
    "tokenize_ms", "prefill_ms", "decode_ms", "detokenize_ms", "other_ms",
    "joules", "j_per_token", "energy_label", "cost_usd", "usd_per_1k_tokens", "cloud_usd",
)


@dataclass(frozen=True)
class SessionTotals:
    requests: int
    generated_tokens: int
    joules: float
    cost_usd: float
    cloud_usd: float
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "generated_tokens": self.generated_tokens,
                "joules": round(self.joules, 4), "wh": round(self.joules / 3600.0, 7),
                "cost_usd": round(self.cost_usd, 9), "cloud_usd": round(self.cloud_usd, 9),
                "label": self.label}


class SessionLedger:
    """Requests accounted in this session (thread-safe: the GUI reads while a bridge adds)."""

    def __init__(self) -> None:
        self._rows: list[RequestAccounting] = []
        self._lock = threading.Lock()

    def add(self, acc: RequestAccounting) -> None:
        with self._lock:
            self._rows.append(acc)

    def requests(self) -> list[RequestAccounting]:
        with self._lock:
            return list(self._rows)

    def totals(self) -> SessionTotals:
        rows = self.requests()
        joules = sum(r.joules or 0.0 for r in rows)
        labels = {r.energy.label for r in rows}
        cloud = sum(r.generated_tokens / 1000.0 * r.prices.cloud_usd_per_1k_tokens for r in rows)
        return SessionTotals(
            requests=len(rows), generated_tokens=sum(r.generated_tokens for r in rows),
            joules=joules, cost_usd=sum(r.cost_usd or 0.0 for r in rows), cloud_usd=cloud,
            label="measured" if labels == {"measured"} else "estimated",
        )

    def write_csv(self, path: Path | str) -> Path:
        """Write one row per request (columns: :data:`CSV_COLUMNS`); returns the path."""
        path = Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for i, acc in enumerate(self.requests(), 1):
                d = acc.to_dict()
                phases = {p["phase"]: p["ms"] for p in d["breakdown"]}
                e, c = d["energy"], d["cost"]
                writer.writerow([
                    i, d["total_ms"], d["ttft_ms"], d["decode_tok_s"], d["prompt_tokens"],
                    d["generated_tokens"], phases["tokenize"], phases["prefill"],
                    phases["decode"], phases["detokenize"], phases["other"],
                    _cell(e["joules"]), _cell(e["j_per_token"]), e["label"], _cell(c["usd"]),
                    _cell(c["usd_per_1k_tokens"]), c["cloud_usd"],
                ])
        return path


def _cell(x: float | None) -> str | float:
    return "" if x is None else x
