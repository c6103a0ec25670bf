"""Results of the GPU check: each check's figures, its goal and whether it was met, written
as one JSON file and one readable Markdown table side by side under ``bench/results/``.

A check ends in one of five states. ``met`` / ``not met`` judge a goal; ``error`` means the
check itself broke (its reason is kept, the other checks still run); ``unavailable`` means
this build cannot do it yet (reported, not failed: batched decode before the batching
engine lands); ``skipped`` means the user left it out. The run fails (exit 1) when any check
is ``not met`` or ``error``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["met", "not met", "error", "unavailable", "skipped"]
FAILING: frozenset[str] = frozenset({"not met", "error"})


@dataclass
class CheckResult:
    """One check. ``figure`` is the headline number as text ("decode 0.97× llama-bench");
    ``rows`` a detail table (list of flat dicts, same keys); ``figures`` raw numbers."""

    name: str
    title: str
    goal: str
    status: Status
    figure: str = ""
    reason: str = ""
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- goal evaluation (pure: the checks measure, these judge) ------------------------------


def judge(ok: bool) -> Status:
    return "met" if ok else "not met"


def ratio_goal(hearth: float, reference: float, minimum: float = 0.95) -> tuple[Status, float]:
    """Hearth ÷ reference against a floor (speed: ≥ 0.95× llama-bench)."""
    if reference <= 0:
        return "error", 0.0
    ratio = hearth / reference
    return judge(ratio >= minimum), ratio


def relative_error(predicted: float, measured: float) -> float:
    """(predicted − measured) ÷ measured: + means the prediction is too high."""
    return (predicted - measured) / measured if measured else float("inf")


def within_goal(predicted: float, measured: float, tolerance: float = 0.05
                ) -> tuple[Status, float]:
    """A prediction within ±tolerance of the measurement (VRAM: ±5 %)."""
    if measured <= 0:
        return "error", float("inf")
    err = relative_error(predicted, measured)
    return judge(abs(err) <= tolerance), err


def power_goal(mean_w: float | None, idle_w: float | None, limit_w: float | None,
               j_per_token: float | None, n_samples: int) -> tuple[Status, str]:
    """NVML power during decode: non-zero, above idle, at most the board's limit (+10 %
    for the averaging of short bursts), from at least 3 samples, with a J/token figure."""
    if mean_w is None or n_samples < 3:
        return "not met", f"only {n_samples} power sample(s) in the decode window"
    problems = []
    if mean_w <= 0:
        problems.append(f"mean power {mean_w:.1f} W is not positive")
    if idle_w is not None and mean_w < 0.9 * idle_w:
        problems.append(f"decode draws {mean_w:.0f} W, below idle {idle_w:.0f} W")
    ceiling = 1.1 * limit_w if limit_w else 2000.0
    if mean_w > ceiling:
        problems.append(f"{mean_w:.0f} W is above the board's limit ({limit_w} W)")
    if not j_per_token or j_per_token <= 0:
        problems.append("no J/token figure")
    return judge(not problems), "; ".join(problems)


def scaling_goal(aggregate: dict[int, float], at: int = 8, minimum: float = 3.0
                 ) -> tuple[Status, float]:
    """Aggregate decode at ``at`` sequences ≥ ``minimum`` × one sequence (the seed's 3×)."""
    one, many = aggregate.get(1), aggregate.get(at)
    if not one or many is None:
        return "error", 0.0
    return judge(many / one >= minimum), many / one


# --- writing -------------------------------------------------------------------------------


@dataclass
class Report:
    """The whole run: machine, build, phase timings and every check."""

    machine: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def failing(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in FAILING]

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"schema": 1, "started": self.started, "machine": self.machine,
                "build": self.build, "phases": self.phases,
                "checks": [c.to_dict() for c in self.checks], "summary": self.summary()}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return lines


def render_markdown(report: Report) -> str:
    """The readable table: one line per check, then each check's details."""
    gpu = ", ".join(f"{g.get('name')} (sm_{str(g.get('compute_cap', '')).replace('.', '')})"
                    for g in report.machine.get("gpus", [])) or "no GPU"
    lines = [f"# GPU check — {report.started}", "",
             f"Machine: {gpu}; {report.machine.get('cpu_cores', '?')} CPU cores; CUDA "
             f"{report.machine.get('cuda', '?')}; build {report.build.get('summary', '-')}", ""]
    lines += markdown_table([{"check": c.title, "figure": c.figure, "goal": c.goal,
                              "status": c.status, "note": c.reason} for c in report.checks])
    if report.phases:
        lines += ["", "Phases (seconds, estimate → actual):", ""]
        lines += markdown_table([{"phase": p["name"], "estimate s": p.get("estimate_s", ""),
                                  "actual s": p.get("seconds", "")} for p in report.phases])
    for c in report.checks:
        if c.rows:
            lines += ["", f"## {c.title}", "", *markdown_table(c.rows)]
    return "\n".join(lines) + "\n"


def write(report: Report, out_dir: Path, stamp: str | None = None) -> tuple[Path, Path]:
    """``gpu-check-<stamp>.json`` and ``.md`` in ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    js, md = out_dir / f"gpu-check-{stamp}.json", out_dir / f"gpu-check-{stamp}.md"
    js.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md.write_text(render_markdown(report))
    return js, md
