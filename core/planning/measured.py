"""What the benchmark measured on this machine, per model file: stored, looked up, summarized.

One JSON file under Hearth's data folder (``benchmarks.json``), read and written whole, like
the settings: a few rows per model file, so there is no need for more. A row is keyed by the
file's resolved path, size and modification time, so a file that changes on disk is never
matched with figures measured on its old contents. The planner and the model picker read
these rows ("measured here"); :mod:`core.telemetry.benchmark` writes them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.paths import hearth_home

log = logging.getLogger("hearth.bench")
_lock = threading.Lock()


def store_path() -> Path:
    return hearth_home() / "benchmarks.json"


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime_ns): what makes a measurement belong to a file."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


@dataclass
class Measurement:
    """One benchmark run of one model file on this machine. Speeds in tokens per second,
    times in milliseconds; ``None`` where that part was not measured."""

    path: str
    size: int
    mtime_ns: int
    file: str
    quant: str
    measured_at: float = field(default_factory=time.time)
    machine: str = ""
    threads: int = 0
    n_gpu_layers: int = 0
    decode_tok_s: float | None = None
    prefill_tok_s: float | None = None
    ttft_ms: float | None = None
    ttft_prompt_tokens: int = 0
    j_per_token: float | None = None
    energy_label: str = ""  # "measured" (NVML/RAPL) or "estimated" (TDP model)
    mean_power_w: float | None = None
    peak_rss_bytes: int | None = None
    perplexity: float | None = None
    perplexity_stderr: float | None = None
    kl_mean: float | None = None
    kl_p99: float | None = None
    same_top_pct: float | None = None
    reference: str | None = None  # the file KL was measured against
    reference_note: str = ""  # e.g. "made from Q4_K_M: holds Q4_K_M's weights"
    quality_tokens: int = 0
    quality_ctx: int = 0
    parallel: dict[str, float | None] = field(default_factory=dict)  # width -> tok/s
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, int]:
        return self.path, self.size, self.mtime_ns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """A few words for a list: "measured here: 212 tok/s, PPL 29.2, KL 0.0047"."""
        parts = []
        if self.decode_tok_s:
            parts.append(f"{self.decode_tok_s:.0f} tok/s")
        if self.perplexity is not None:
            parts.append(f"PPL {self.perplexity:.2f}")
        if self.kl_mean is not None:
            parts.append(f"KL {self.kl_mean:.4f}")
        if self.j_per_token is not None:
            est = " est." if self.energy_label == "estimated" else ""
            parts.append(f"{self.j_per_token:.2f} J/tok{est}")
        return "measured here: " + ", ".join(parts) if parts else ""


class MeasurementStore:
    """The rows in ``benchmarks.json`` (default: under Hearth's home); thread-safe."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()

    def all(self) -> list[Measurement]:
        try:
            data = json.loads(self.path.read_text())
            return [Measurement.from_dict(row) for row in data.get("results", [])]
        except FileNotFoundError:
            return []
        except (ValueError, TypeError, AttributeError) as err:
            bad = self.path.with_suffix(".json.bad")
            log.error("benchmark results %s are unreadable (%s); moved to %s", self.path,
                      err, bad)
            os.replace(self.path, bad)
            return []

    def add(self, row: Measurement) -> None:
        """Keep ``row`` as the latest measurement of its file (older ones of the same file
        contents are replaced; other files' rows are kept)."""
        with _lock:
            rows = [r for r in self.all() if r.key != row.key]
            rows.append(row)
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"results": [r.to_dict() for r in rows]}, indent=1))
            os.replace(tmp, self.path)

    def latest(self, path: Path) -> Measurement | None:
        """The measurement of this file as it is now on disk, or None."""
        try:
            key = file_key(path)
        except OSError:
            return None
        rows = [r for r in self.all() if r.key == key]
        return max(rows, key=lambda r: r.measured_at) if rows else None

    def by_path(self) -> dict[str, Measurement]:
        """Every file's latest measurement whose file is unchanged, by resolved path."""
        out: dict[str, Measurement] = {}
        for row in sorted(self.all(), key=lambda r: r.measured_at):
            try:
                if file_key(Path(row.path)) == row.key:
                    out[row.path] = row
            except OSError:
                continue
        return out
