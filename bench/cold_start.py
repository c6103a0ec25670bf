"""Cold start: launch -> main window painted, and launch -> first token of the default model.

Targets (design card, 2-core machine): window <= 1.0 s, first token <= 2.5 s. Each launch is
a new process, as a double-click is, started with ``--smoke --timings`` so the app prints a
JSON line with the wall-clock time of each milestone; the time before ``Popen`` is the
launch. The first launch runs in an empty Hearth home (the first run: the built-in model is
assembled from its package chunks), reported on its own; the next launches reuse that home
and are the cold starts the targets apply to (the OS file cache is warm, as after any
earlier use). The bundle (``dist/hearth/hearth``) is measured the same way when it exists.

Usage: ``python -m bench.cold_start [--runs N] [--bundle-only | --venv-only]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_HEARTH = Path(sys.executable).parent / "hearth"
BUNDLE_HEARTH = ROOT / "dist" / "hearth" / "hearth"
RESULTS = Path(__file__).resolve().parent / "results"
WINDOW_TARGET_S = 1.0
FIRST_TOKEN_TARGET_S = 2.5
PROMPT = "Hello! Who are you?"


def launch(command: list[str], home: Path, timeout: float = 180) -> dict[str, float]:
    """Start the app once; seconds from launch to each milestone it reported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_QPA")}
    env.update({"HEARTH_HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
                "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    t0 = time.time()
    proc = subprocess.run([*command, "--smoke", PROMPT, "--max-tokens", "8", "--timings"],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    marks: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith('{"event"'):
            event = json.loads(line)
            marks.setdefault(event["event"], event["t"] - t0)
    marks["exit"] = time.time() - t0
    return marks


def measure(name: str, command: list[str], runs: int) -> dict[str, object]:
    """A first run in a fresh home, then ``runs`` cold starts reusing it."""
    with tempfile.TemporaryDirectory(prefix="hearth-cold-") as tmp:
        home = Path(tmp)
        first = launch(command, home)
        cold = [launch(command, home) for _ in range(runs)]
    return {"name": name, "command": command, "first_run": first, "cold": cold}


def _median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def report(result: dict[str, object]) -> bool:
    """Print one block; True when the medians meet both targets."""
    cold: list[dict[str, float]] = result["cold"]  # type: ignore[assignment]
    first: dict[str, float] = result["first_run"]  # type: ignore[assignment]
    window, token = _median(cold, "window_shown"), _median(cold, "first_token")
    ok = window <= WINDOW_TARGET_S and token <= FIRST_TOKEN_TARGET_S
    print(f"\nCold start — {result['name']} ({len(cold)} launches, median; first run apart)")
    print(f"{'milestone':<26} {'cold':>8} {'first run':>10} {'target':>8}")
    for key, target in (("window_shown", WINDOW_TARGET_S), ("model_loaded", None),
                        ("first_token", FIRST_TOKEN_TARGET_S), ("exit", None)):
        goal = f"{target:.1f}" if target else ""
        print(f"{key:<26} {_median(cold, key):>7.2f}s {first.get(key, float('nan')):>9.2f}s "
              f"{goal:>8}")
    print("meets targets" if ok else "MISSES a target")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="cold launches per build")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--venv-only", action="store_true")
    which.add_argument("--bundle-only", action="store_true")
    args = parser.parse_args(argv)
    builds = []
    if not args.bundle_only:
        builds.append(("installed venv (hearth entry point)", [str(VENV_HEARTH)]))
    if not args.venv_only:
        if BUNDLE_HEARTH.is_file():
            builds.append(("PyInstaller bundle (dist/hearth)", [str(BUNDLE_HEARTH)]))
        else:
            print(f"(no bundle at {BUNDLE_HEARTH.relative_to(ROOT)}: `make package` builds it)")
    results = [measure(name, cmd, args.runs) for name, cmd in builds]
    ok = all([report(r) for r in results])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"cold-start-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"targets": {"window_shown": WINDOW_TARGET_S,
                                            "first_token": FIRST_TOKEN_TARGET_S},
                                "results": results}, indent=2))
    print(f"\nraw samples: {path}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
