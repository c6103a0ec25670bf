"""The reference tools' output, read into plain records.

``llama-bench -o json`` prints one JSON array (one object per test); ``llama-batched-bench``
prints one row per (prompt, generation, parallel) triple, as JSON lines with
``--output-format jsonl`` or as a Markdown table by default. Both parsers accept the whole
stdout, log lines included, and raise ValueError when no result is in it, so a tool that
failed can never read as a measurement.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BenchTest:
    """One llama-bench test: prefill (``n_prompt`` > 0, ``n_gen`` == 0) or decode."""

    n_prompt: int
    n_gen: int
    avg_ts: float
    stddev_ts: float
    samples_ts: list[float] = field(default_factory=list)
    n_gpu_layers: int | None = None
    flash_attn: Any = None
    backends: str = ""
    gpu_info: str = ""
    n_threads: int | None = None

    @property
    def kind(self) -> str:
        return f"pp{self.n_prompt}" if self.n_gen == 0 else f"tg{self.n_gen}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_llama_bench_json(text: str) -> list[BenchTest]:
    """Every test in ``llama-bench -o json`` output."""
    start = text.find("[")
    if start < 0:
        raise ValueError("llama-bench printed no JSON array: " + _tail(text))
    try:
        rows = json.loads(text[start:text.rindex("]") + 1])
    except ValueError as err:
        raise ValueError(f"llama-bench's JSON does not parse ({err})") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError("llama-bench's JSON holds no test")
    tests = []
    for row in rows:
        try:
            tests.append(BenchTest(
                n_prompt=int(row["n_prompt"]), n_gen=int(row["n_gen"]),
                avg_ts=float(row["avg_ts"]), stddev_ts=float(row["stddev_ts"]),
                samples_ts=[float(x) for x in row.get("samples_ts", [])],
                n_gpu_layers=row.get("n_gpu_layers"), flash_attn=row.get("flash_attn"),
                backends=str(row.get("backends", "")), gpu_info=str(row.get("gpu_info", "")),
                n_threads=row.get("n_threads")))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"llama-bench test without {err}: {row!r:.200}") from None
    return tests


def find_test(tests: list[BenchTest], n_prompt: int, n_gen: int) -> BenchTest:
    for t in tests:
        if t.n_prompt == n_prompt and t.n_gen == n_gen:
            return t
    have = ", ".join(t.kind for t in tests)
    raise ValueError(f"llama-bench ran no pp{n_prompt}/tg{n_gen} test (it ran {have})")


@dataclass(frozen=True)
class BatchedRow:
    """One llama-batched-bench row: ``pl`` sequences, each ``pp`` prompt + ``tg`` generated
    tokens; ``speed_tg`` is the aggregate decode rate (all sequences together)."""

    pp: int
    tg: int
    pl: int
    n_kv: int
    t_pp: float
    speed_pp: float
    t_tg: float
    speed_tg: float
    t: float
    speed: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MD_ROW = re.compile(r"^\|\s*(\d+)\s*\|" + r"\s*([\d.]+)\s*\|" * 9 + r"\s*$")


def parse_batched_bench(text: str) -> list[BatchedRow]:
    """Every result row of llama-batched-bench, JSON lines or the Markdown table."""
    rows: list[BatchedRow] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"speed_tg"' in line:
            d = json.loads(line)
            rows.append(BatchedRow(int(d["pp"]), int(d["tg"]), int(d["pl"]), int(d["n_kv"]),
                                   float(d["t_pp"]), float(d["speed_pp"]), float(d["t_tg"]),
                                   float(d["speed_tg"]), float(d["t"]), float(d["speed"])))
            continue
        m = _MD_ROW.match(line)
        if m:
            v = m.groups()
            rows.append(BatchedRow(int(v[0]), int(v[1]), int(v[2]), int(v[3]), float(v[4]),
                                   float(v[5]), float(v[6]), float(v[7]), float(v[8]),
                                   float(v[9])))
    if not rows:
        raise ValueError("llama-batched-bench printed no result row: " + _tail(text))
    return rows


def aggregate_decode(rows: list[BatchedRow]) -> dict[int, float]:
    """Aggregate decode tok/s by number of parallel sequences."""
    return {r.pl: r.speed_tg for r in rows}


def _tail(text: str, n: int = 3) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(nothing)"
