"""Predicted vs measured host memory for the default model in four precisions.

For Q4_K_M, Q8_0, F16 and F32 (made with Hearth's quantizer, cached under .cache/test-models)
at n_ctx 512, 4096 and 32768, each load runs in a fresh process (load + one full-ubatch
decode on the CPU) and the RSS increase is compared with ``core.planning.memory_model.predict``.
Prints the table, writes bench/results/planner_verify.json, and exits 1 if any prediction is
off by more than 10 %.
Run: ``python -m bench.planner_verify`` (or ``python bench/planner_verify.py``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cli.plan import print_verify_table, verify_rows  # noqa: E402
from tests.fixtures.variants import make_variants  # noqa: E402

CONTEXTS = [512, 4096, 32768]
BOUND = 0.10


def main() -> int:
    start = time.monotonic()
    variants = make_variants()
    rows = verify_rows([variants[q] for q in ("Q4_K_M", "Q8_0", "F16", "F32")], CONTEXTS)
    print_verify_table(rows)
    worst = max(abs(r["error"]) for r in rows)
    print(f"worst error {worst:+.1%} (bound ±{BOUND:.0%}); {time.monotonic() - start:.0f} s")
    out = ROOT / "bench" / "results" / "planner_verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "worst_error": worst, "bound": BOUND}, indent=2))
    return 0 if worst <= BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
