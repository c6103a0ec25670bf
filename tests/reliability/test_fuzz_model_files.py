"""The fuzz run inside ``make test``: >= 1,000 damaged model files, none may hurt the app.

Each input is either rejected by the validator with a one-line reason, or loaded in a real
worker, where llama.cpp may refuse it (a clean one-line error) or run it; a worker that
dies is a validator gap and fails this test with the recipe of the input. The seed is
fixed so a failure reproduces; ``HEARTH_FUZZ_SEED`` / ``HEARTH_FUZZ_CASES`` change it, and
``make fuzz`` runs a long random-seeded campaign.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from tests.paths import ARTIFACTS
from tests.reliability.gguf_fuzz import fuzz, save_crash

N_CASES = int(os.environ.get("HEARTH_FUZZ_CASES", "1000"))
SEED = int(os.environ.get("HEARTH_FUZZ_SEED", "20261124"))


def test_fuzzed_model_files_never_crash_and_always_explain(default_model: Path,
                                                           tmp_path: Path) -> None:
    me = psutil.Process()
    report = fuzz(default_model, tmp_path / "fuzz", N_CASES, SEED)
    print(report.summary())
    counts = report.counts
    assert len(report.outcomes) >= N_CASES >= 1000 or "HEARTH_FUZZ_CASES" in os.environ
    crashes = report.crashes()
    saved = [save_crash(o, ARTIFACTS / "fuzz-crashes") for o in crashes]
    assert not crashes, f"validator gaps (recipes in {saved}): " + "; ".join(
        f"{o.case.note}: {o.message}" for o in crashes)
    for outcome in report.outcomes:
        if outcome.verdict in ("rejected", "refused"):
            assert outcome.message.strip(), outcome.case.note
            assert "\n" not in outcome.message.strip(), outcome.message
            assert len(outcome.message) < 400, outcome.message
    # The mix exercises all three paths, and most inputs stop at the validator.
    assert counts["rejected"] > 0.7 * len(report.outcomes)
    assert counts["ran"] > 0 and counts["refused"] > 0
    assert me.is_running()  # the parent (this process) is alive and well
    assert report.seconds < 120, report.summary()
