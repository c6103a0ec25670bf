"""``hearth-cli quantize IN OUT --type Q4_K_M``: make a smaller GGUF with llama.cpp's quantizer.

Shows a one-line progress (tensors done / total) on stderr. Types that need an importance
matrix are refused before any work starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.gguf.quantize import QUANT_TYPES, QuantizeProgress, quantize_model
from core.planning.hardware import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="quantize a GGUF model (Q4_K_M, Q8_0, ...)",
                              description=__doc__)
    p.add_argument("input", type=Path, help="source .gguf (ideally F16/F32)")
    p.add_argument("output", type=Path, help="where to write the quantized .gguf")
    p.add_argument("--type", required=True, metavar="TYPE",
                   help=f"target type: {', '.join(QUANT_TYPES)}")
    p.add_argument("--allow-requantize", action="store_true",
                   help="accept an already-quantized source (quality is never regained)")
    p.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tty = sys.stderr.isatty()

    def show(p: QuantizeProgress) -> None:
        line = f"quantizing: {p.done}/{p.total} tensors ({p.fraction:.0%}) {p.tensor}"
        if tty:
            print(f"\r{line[:100]:100}", end="", file=sys.stderr, flush=True)
        elif p.done == p.total or p.done % 50 == 0:
            print(line, file=sys.stderr, flush=True)

    out = quantize_model(args.input, args.output, args.type,
                         allow_requantize=args.allow_requantize, nthread=args.threads,
                         progress=show)
    if tty:
        print(file=sys.stderr)
    in_size, out_size = args.input.stat().st_size, out.stat().st_size
    print(f"Wrote {out} ({format_size(out_size)}, from {format_size(in_size)}).")
    return 0
