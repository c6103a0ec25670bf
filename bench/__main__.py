"""``make bench``: Hearth's speed against llama.cpp's own tools, side by side, in one run.

Prints a table of medians and ratios (Hearth ÷ reference, the median of paired samples:
see bench/stats.py) and writes the raw samples to
``bench/results/<name>-<timestamp>.json``. Figures are for this machine in this run only;
compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from bench.engine_bench import Row, bench_engine
from bench.stats import median, wait_quiet
from core.models.bundled import default_model_path

RESULTS = Path(__file__).resolve().parent / "results"


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"{'measure (medians)':<34} {'Hearth':>10} {'reference':>12} {'ratio':>7}  reference")
    for row in rows:
        h, r = median(row.hearth), median(row.reference)
        print(f"{row.name:<34} {h:>10.2f} {r:>12.2f} {row.ratio:>7.3f}  {row.reference_name}")


def save(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--model", type=Path, help="GGUF to measure (default: bundled)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per round and side")
    parser.add_argument("--skip-planner", action="store_true",
                        help="skip the memory-prediction check")
    parser.add_argument("--skip-speculative", action="store_true",
                        help="skip speculative decoding (F32 + twin, prompt lookup)")
    parser.add_argument("--skip-batched", action="store_true",
                        help="skip many sequences per decode and the hearth-cli path")
    parser.add_argument("--skip-docs", action="store_true",
                        help="skip the documents retrieval evaluation (bench/docs_bench.py)")
    parser.add_argument("--skip-quality", action="store_true",
                        help="skip hearth-cli bench vs llama-bench / llama-perplexity")
    parser.add_argument("--skip-server", action="store_true",
                        help="skip the local server against llama-server")
    parser.add_argument("--skip-pool", action="store_true",
                        help="skip two models under one memory budget (swaps)")
    parser.add_argument("--max-load", type=float, default=3.0,
                        help="before each section wait (up to 2 min) for the 1-minute load "
                             "average to fall to this (0: never wait); the bench's own last "
                             "section leaves about 2 on a 2-core machine")
    args = parser.parse_args(argv)
    model = args.model or default_model_path()

    def quiet(section: str) -> None:
        load = wait_quiet(section, args.max_load)
        print(f"\n[{section}: starts at load {load:.1f}]")

    quiet("engine")
    rows, setup = bench_engine(model, args.rounds, args.reps)
    print_table(f"Engine vs llama.cpp — {setup['model']}, {setup['threads']} threads", rows)
    path = save("engine", {"setup": setup, "rows": [r.to_dict() for r in rows]})
    print(f"\nraw samples: {path}", file=sys.stderr)
    if not args.skip_batched:
        quiet("batching")
        bench_batching(model)
    from bench import gui_bench

    quiet("window")
    gui_bench.main()
    from bench import cold_start

    quiet("cold start")
    cold_start.main([])
    if not args.skip_speculative:
        quiet("speculative")
        bench_speculative(args.rounds)
    if not args.skip_docs:
        from bench import docs_bench

        quiet("documents")

        save("docs", docs_bench.main([]))
    if not args.skip_quality:
        from bench import quality_bench

        quiet("quality")

        rows, table = quality_bench.main(max(2, args.rounds // 2), args.reps)
        print_table("hearth-cli bench vs llama-bench and llama-perplexity (default model)", rows)
        quality_bench.print_quality(table)
        save("quality", {"rows": [r.to_dict() for r in rows], "quality": table})
    if not args.skip_server:
        from bench import server_bench

        quiet("server")

        rows_s = server_bench.main(["--model", str(model)])
        print(f"\nraw samples: {save('server', {'rows': [r.to_dict() for r in rows_s]})}",
              file=sys.stderr)
    if not args.skip_pool:
        from bench import pool_bench

        quiet("pool")

        rows, setup = pool_bench.main(max(2, args.rounds // 2))
        print_table("Engine pool: two models alternating under a one-model budget "
                    "(goal <= 1.0)", rows)
        pool_bench.print_summary(setup)
        save("pool", {"setup": setup, "rows": [r.to_dict() for r in rows]})
    if args.skip_planner:
        return 0
    from bench import planner_verify

    print("\nMemory planner: predicted vs measured host memory")
    return planner_verify.main()


def bench_batching(model: Path) -> None:
    """Aggregate decode at 1-16 sequences vs llama-batched-bench; hearth-cli's stdout vs
    llama-bench tg (the single stream on the user's path)."""
    from bench.batched_bench import bench_batched
    from bench.cli_bench import bench_cli

    rows, setup = bench_batched(model)
    print_table(f"Continuous batching vs llama-batched-bench — pp{setup['pp']} + tg{setup['tg']}, "
                f"{setup['threads']} threads (goal >= 0.95 at every width)", rows)
    if any(math.isnan(h) for r in rows for h in r.hearth):
        print("nan: the first streams had finished before the last one started decoding, so "
              "all of them never decoded at once (prompts that arrive together are admitted a "
              "few tokens per step beside running streams)")
    path = save("batched", {"setup": setup, "rows": [r.to_dict() for r in rows]})
    print(f"\nraw samples: {path}", file=sys.stderr)
    rows, setup = bench_cli(model)
    print_table("The user's path: hearth-cli generate --json, timed from outside "
                "(goal >= 0.97)", rows)
    path = save("cli-path", {"setup": setup, "rows": [r.to_dict() for r in rows]})
    print(f"\nraw samples: {path}", file=sys.stderr)


def bench_speculative(rounds: int) -> None:
    """Speculation vs plain decoding of the same target: table, details, raw samples."""
    from bench import speculative_bench

    rows = speculative_bench.main(rounds)
    print_table("Speculative decoding vs the same target without it (greedy, "
                f"{speculative_bench.N_GEN} tokens)", rows)
    speculative_bench.print_details(rows)
    path = save("speculative", {"rows": [r.to_dict() | {"speculative": r.stats,
                                                        "identical": r.identical}
                                         for r in rows]})
    print(f"\nraw samples: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
