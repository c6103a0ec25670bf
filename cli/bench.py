"""``hearth-cli bench``: speed, energy, memory and quality of model files, measured here.

Examples::

    hearth-cli bench                                   # the bundled model
    hearth-cli bench --variants Q8_0,F32 --json        # + its Q8_0 and F32 variants, KL vs F32
    hearth-cli bench --model a.gguf --model b.gguf --widths 1,2,4,8,16

Per file: prefill and decode tok/s (llama-bench's pp/tg tests, through the engine's worker
process as a chat runs), time to first token, J/token (labelled "estimated" when the power
comes from a model, not a meter), peak memory, and quality — perplexity over the held-out
text that ships with Hearth, and the KL divergence of each file's next-token distribution
from the highest-precision file's (as ``llama-perplexity --kl-divergence``). Results are
stored under Hearth's data folder; the model picker shows them and the planner prefers them.
Parallel widths above 1 are measured once the engine decodes several sequences at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from cli.progress_bar import ProgressBar
from core.errors import ConfigError
from core.planning.measured import Measurement
from core.telemetry.benchmark import Benchmark, BenchOptions, BenchProgress, make_variants


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 1,2,4,8,16, got {text!r}") \
            from None
    if not widths or any(not 1 <= w <= 64 for w in widths):
        raise argparse.ArgumentTypeError("each width must be between 1 and 64")
    return widths


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure speed, energy and quality of models here",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, action="append",
                   help="GGUF file to measure (repeatable; default: the bundled model)")
    p.add_argument("--variants", metavar="TYPES",
                   help="also make and measure these variants of the first model, e.g. "
                        "Q8_0,F16,F32 (cached in Hearth's models folder)")
    p.add_argument("--reference", type=Path,
                   help="file KL is measured against (default: the highest precision)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each speed test")
    p.add_argument("--n-prompt", type=int, default=512, help="prefill test tokens (pp)")
    p.add_argument("--n-gen", type=int, default=128, help="decode test tokens (tg)")
    p.add_argument("--widths", type=_widths, default=(1,),
                   help="parallel widths for the aggregate decode speed (default 1)")
    p.add_argument("--threads", type=int, help="CPU threads (default: one per core)")
    p.add_argument("--gpu-layers", type=int, default=-1, help="GPU layers (-1 all, 0 none)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed tests")
    p.add_argument("--no-quality", action="store_true", help="skip perplexity and KL")
    p.add_argument("--quality-ctx", type=int, default=512,
                   help="tokens per perplexity chunk (default 512, as llama-perplexity)")
    p.add_argument("--quality-tokens", type=int, help="score only the text's first N tokens")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--events", action="store_true",
                   help="write progress as JSON lines on stderr (for the app)")
    p.set_defaults(func=run)


def _files(args: argparse.Namespace) -> list[Path]:
    from core.models.bundled import default_model_path
    from core.paths import models_dir

    files = [Path(m) for m in args.model] if args.model else [default_model_path()]
    for f in files:
        if not f.is_file():
            raise ConfigError(f"The model file {f} does not exist; check the path.")
    if args.variants:
        types = [t.strip().upper() for t in args.variants.split(",") if t.strip()]
        with ProgressBar("making variants") as bar:
            made = make_variants(files[0], types, models_dir() / "variants",
                                 lambda name, frac: bar.update(frac, 1.0, name))
        files += [p for p in made.values() if p not in files]
    return files


def run(args: argparse.Namespace) -> int:
    if args.reps < 1 or args.n_prompt < 1 or args.n_gen < 2:
        raise ConfigError("--reps and --n-prompt must be at least 1, --n-gen at least 2.")
    if args.quality_ctx < 16:
        raise ConfigError("--quality-ctx must be at least 16 tokens.")
    files = _files(args)
    options = BenchOptions(reps=args.reps, n_prompt=args.n_prompt, n_gen=args.n_gen,
                           widths=args.widths, threads=args.threads,
                           n_gpu_layers=args.gpu_layers, speed=not args.no_speed,
                           quality=not args.no_quality, quality_ctx=args.quality_ctx,
                           quality_tokens=args.quality_tokens, reference=args.reference)
    lock = threading.Lock()
    with ProgressBar("benchmark") as bar:

        def show(p: BenchProgress) -> None:
            bar.update(p.done, p.total, p.message)
            if args.events:
                with lock:
                    print(json.dumps(p.to_dict()), file=sys.stderr, flush=True)

        rows = Benchmark(options, progress=show, machine=_machine()).run(files)
    if args.json:
        json.dump({"setup": {"files": [str(f) for f in files], "reps": args.reps,
                             "n_prompt": args.n_prompt, "n_gen": args.n_gen,
                             "widths": list(args.widths), "quality_ctx": args.quality_ctx},
                   "results": [r.to_dict() for r in rows]}, sys.stdout, indent=2)
        print()
    else:
        print_table(rows)
    return 0


def _machine() -> str:
    from core.planning.hardware import cpu_model

    return cpu_model()


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def print_table(rows: list[Measurement]) -> None:
    print(f"{'file':40} {'quant':7} {'pp tok/s':>9} {'tg tok/s':>9} {'TTFT ms':>8} "
          f"{'J/tok':>7} {'peak MiB':>9} {'PPL':>8} {'KL':>8} {'same top':>8}")
    for r in rows:
        est = "*" if r.energy_label == "estimated" else " "
        peak = r.peak_rss_bytes / 2**20 if r.peak_rss_bytes else None
        same = f"{r.same_top_pct:.1f}%" if r.same_top_pct is not None else "-"
        print(f"{r.file[:40]:40} {r.quant:7} {_f(r.prefill_tok_s, '9.1f')} "
              f"{_f(r.decode_tok_s, '9.1f')} {_f(r.ttft_ms, '8.0f')} "
              f"{_f(r.j_per_token, '6.3f')}{est} {_f(peak, '9.0f')} {_f(r.perplexity, '8.3f')} "
              f"{_f(r.kl_mean, '8.5f')} {same:>8}")
    if any(r.energy_label == "estimated" for r in rows):
        print("* estimated: no power meter here; energy from the CPU/GPU power model")
    refs = {r.reference for r in rows if r.reference}
    for ref in refs:
        print(f"KL divergence and 'same top' are against {ref}.")
    for note in {r.reference_note for r in rows if r.reference_note}:
        print(f"note: {note}")
    for note in sorted({n for r in rows for n in r.notes if n.startswith("width")}):
        print(f"note: {note}")
