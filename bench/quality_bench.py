"""``hearth-cli bench`` against llama.cpp's own tools, in one sitting.

Speed rows: the benchmark's decode (tg128) and prefill (pp512) on the default model — the
same :class:`core.telemetry.benchmark.Benchmark` that ``hearth-cli bench`` and Tools ›
Benchmark run (worker process, events streamed) — against ``llama-bench``, in alternating
rounds; the goal is a ratio within 5 % of 1.00.

Quality rows: perplexity over the held-out text and the KL divergence from F32, for the
Q4_K_M and Q8_0 files (the default model's variants, made with Hearth's quantizer), from
Hearth and from ``llama-perplexity --kl-divergence`` on the same text and context; Q8_0 must
come out closer to F32 than Q4_K_M. Note: the F32 reference is made from the bundled Q4_K_M
(no original-precision Gemma 3 270M ships), so its KL figures measure what each file's
arithmetic and re-rounding adds, not the loss of quantizing the original weights.

Run: ``python -m bench.quality_bench`` (part of ``make bench``).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.engine_bench import Row
from bench.llama_bench import ensure_llama_bench, ensure_tool, run_llama_bench
from core.planning.measured import MeasurementStore
from core.telemetry.benchmark import Benchmark, BenchOptions, heldout_text
from tests.fixtures.variants import make_variants

N_PROMPT, N_GEN = 512, 128
QUALITY_CTX = 512


def speed_rows(model: Path, rounds: int, reps: int) -> list[Row]:
    """hearth-cli bench's speed path vs llama-bench, alternating, same threads and batch."""
    exe = ensure_llama_bench()
    tg, pp = Row(f"bench decode tg{N_GEN} (tok/s)"), Row(f"bench prefill pp{N_PROMPT} (tok/s)")
    with tempfile.TemporaryDirectory() as tmp:
        store = MeasurementStore(Path(tmp) / "benchmarks.json")
        for _ in range(rounds):
            row = Benchmark(BenchOptions(reps=reps, n_prompt=N_PROMPT, n_gen=N_GEN,
                                         quality=False, n_gpu_layers=0), store=store
                            ).run([model])[0]
            tg.hearth.append(row.decode_tok_s or 0.0)
            pp.hearth.append(row.prefill_tok_s or 0.0)
            threads = row.threads
            tg.reference += run_llama_bench(exe, model, threads, 0, N_GEN, reps).samples_ts
            pp.reference += run_llama_bench(exe, model, threads, N_PROMPT, 0, reps).samples_ts
    return [tg, pp]


def _llama_perplexity(exe: Path, model: Path, text: Path, base: Path, compare: bool
                      ) -> dict[str, float]:
    cmd = [str(exe), "-m", str(model), "-f", str(text), "-c", str(QUALITY_CTX), "-b",
           str(QUALITY_CTX), "--kl-divergence-base", str(base)]
    if compare:
        cmd.append("--kl-divergence")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    if not compare:
        return {"ppl": float(re.findall(r"Final estimate: PPL = ([\d.]+)", log)[0])}
    return {"ppl": float(re.findall(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", log)[0]),
            "kl": float(re.findall(r"Mean\s+KLD:\s+([\d.]+)", log)[0])}


def quality_rows() -> tuple[list[Row], list[dict[str, object]]]:
    """PPL and KL vs F32 for Q4_K_M and Q8_0: Hearth's benchmark and llama-perplexity."""
    variants = make_variants(types=("Q4_K_M", "Q8_0", "F32"))
    files = [variants["Q4_K_M"], variants["Q8_0"], variants["F32"]]
    with tempfile.TemporaryDirectory() as tmp:
        store = MeasurementStore(Path(tmp) / "benchmarks.json")
        ours = {r.quant: r for r in Benchmark(
            BenchOptions(speed=False, quality_ctx=QUALITY_CTX, reference=variants["F32"],
                         n_gpu_layers=0), store=store).run(files)}
        exe = ensure_tool("llama-perplexity")
        text, base = Path(tmp) / "heldout.txt", Path(tmp) / "f32.kld"
        text.write_text(heldout_text())
        theirs = {"F32": _llama_perplexity(exe, variants["F32"], text, base, False)}
        for q in ("Q4_K_M", "Q8_0"):
            theirs[q] = _llama_perplexity(exe, variants[q], text, base, True)
    rows, table = [], []
    for q in ("F32", "Q8_0", "Q4_K_M"):
        r = ours[q]
        rows.append(Row(f"perplexity {q}", [r.perplexity or 0.0], [theirs[q]["ppl"]],
                        "llama-perplexity"))
        if q != "F32":
            rows.append(Row(f"KL divergence {q} vs F32", [r.kl_mean or 0.0],
                            [theirs[q]["kl"]], "llama-perplexity"))
        table.append({"quant": q, "perplexity": r.perplexity, "kl_vs_f32": r.kl_mean,
                      "kl_p99": r.kl_p99, "same_top_pct": r.same_top_pct,
                      "llama_perplexity": theirs[q], "tokens_scored": r.quality_tokens,
                      "note": r.reference_note})
    return rows, table


def print_quality(table: list[dict[str, object]]) -> None:
    print(f"\n{'quant':8} {'PPL':>9} {'KL vs F32':>10} {'KL p99':>8} {'same top':>9}")
    for t in table:
        print(f"{t['quant']:8} {t['perplexity']:9.4f} {t['kl_vs_f32']:10.5f} "
              f"{t['kl_p99']:8.4f} {t['same_top_pct']:8.2f}%")
    kl = {t["quant"]: t["kl_vs_f32"] for t in table}
    closer = kl["Q8_0"] < kl["Q4_K_M"]  # type: ignore[operator]
    print(f"Q8_0 closer to F32 than Q4_K_M: {'yes' if closer else 'NO'} "
          f"(tokens scored: {table[0]['tokens_scored']})")


def main(rounds: int = 4, reps: int = 3) -> tuple[list[Row], list[dict[str, object]]]:
    from core.models.bundled import default_model_path

    rows = speed_rows(default_model_path(), rounds, reps)
    quality, table = quality_rows()
    return rows + quality, table


if __name__ == "__main__":
    from bench.__main__ import print_table

    all_rows, quality_table = main()
    print_table("hearth-cli bench vs llama.cpp's tools (default model, CPU)", all_rows)
    print_quality(quality_table)
    within = all(abs(r.ratio - 1) <= 0.05 for r in all_rows[:2])
    print(f"speed within 5 % of llama-bench: {'yes' if within else 'NO'}; "
          f"median ratio {statistics.median(r.ratio for r in all_rows[:2]):.3f}")
    sys.exit(0 if within else 1)
