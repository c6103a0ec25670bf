"""``hearth-cli quantize IN OUT --type Q4_K_M``: make a smaller GGUF with llama.cpp's quantizer.

Mixed precision as ``llama-quantize`` spells it::

    hearth-cli quantize in.gguf out.gguf --type Q4_K_M \\
        --tensor-type 'blk\\.(1[2-7])\\.=Q8_0' --output-type F16

``--tensor-type REGEX=TYPE`` (repeatable; the first pattern found in a tensor's name wins)
sets those tensors' ggml type; ``--output-type`` the output head's; ``--token-embedding-type``
the embedding's. Patterns that match no tensor are refused before any work starts, as are
types that need an importance matrix. A progress bar (rich) is drawn on a terminal; piped,
only the final count is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.progress_bar import ProgressBar
from core.gguf.quantize import QUANT_TYPES, MixedPrecision, QuantizeProgress, quantize_model
from core.gguf.reader import read_local
from core.planning.hardware import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="quantize a GGUF model (Q4_K_M, Q8_0, ...)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="source .gguf (ideally F16/F32)")
    p.add_argument("output", type=Path, help="where to write the quantized .gguf")
    p.add_argument("--type", required=True, metavar="TYPE",
                   help=f"target type: {', '.join(QUANT_TYPES)}")
    p.add_argument("--tensor-type", action="append", default=[], metavar="REGEX=TYPE",
                   help="ggml type for the tensors whose name matches REGEX (repeatable)")
    p.add_argument("--output-type", metavar="TYPE", help="ggml type of the output head")
    p.add_argument("--token-embedding-type", metavar="TYPE",
                   help="ggml type of the token embedding")
    p.add_argument("--allow-requantize", action="store_true",
                   help="accept an already-quantized source (quality is never regained)")
    p.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mix = MixedPrecision.parse(args.tensor_type, args.output_type, args.token_embedding_type)
    if not mix.empty and args.input.is_file():
        for note in mix.resolve(read_local(args.input)).notes:
            print(f"hearth-cli: {note}", file=sys.stderr)
    last: list[QuantizeProgress] = []
    with ProgressBar("quantizing") as bar:

        def show(p: QuantizeProgress) -> None:
            last[:] = [p]
            bar.update(p.done, p.total, p.tensor)

        out = quantize_model(args.input, args.output, args.type,
                             allow_requantize=args.allow_requantize, nthread=args.threads,
                             progress=show, mix=mix)
    if last and not bar.shown:
        print(f"quantized: {last[0].done}/{last[0].total} tensors", file=sys.stderr)
    in_size, out_size = args.input.stat().st_size, out.stat().st_size
    print(f"Wrote {out} ({format_size(out_size)}, from {format_size(in_size)}).")
    return 0
