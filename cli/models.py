"""``hearth-cli models | rm | import``: the models on this machine.

``models`` lists every model Hearth can run: the bundled default, the Hugging Face cache,
imported files, and what Ollama and LM Studio keep (read-only). ``rm`` deletes a model Hearth
owns; ``import`` copies (or with ``--link`` links) a GGUF file into Hearth's models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.hub import human
from core.models.library import Library


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the models on this machine",
                              description=__doc__)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--engine", metavar="URL",
                   help="list the models of a remote OpenAI-compatible engine instead "
                        "(http://host:port/v1; key from $HEARTH_ENGINE_KEY or Settings › Engines)")
    p.set_defaults(func=run_models)

    p = subparsers.add_parser("rm", help="delete a downloaded or imported model",
                              description=__doc__)
    p.add_argument("model", help="id or name as shown by 'hearth-cli models'")
    p.set_defaults(func=run_rm)

    p = subparsers.add_parser("import", help="copy or link a GGUF file into Hearth",
                              description=__doc__)
    p.add_argument("path", type=Path)
    p.add_argument("--link", action="store_true", help="link instead of copying")
    p.set_defaults(func=run_import)


def _params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def run_remote_models(url: str, as_json: bool) -> int:
    """``models --engine URL``: what the engine lists, with what it says about each."""
    from core.engine.remote import connect

    with connect(url) as engine:
        for m in engine.models():
            if as_json:
                print(json.dumps(m.to_json()))
                continue
            size = human(m.size_bytes) if m.size_bytes else "?"
            print(f"{m.id:<60} {m.server:<18} {_params(m.n_params):>6} "
                  f"{m.n_ctx or '?':>7} ctx {size:>9}")  # unknown, never 0
    return 0


def run_models(args: argparse.Namespace) -> int:
    if args.engine:
        return run_remote_models(args.engine, args.json)
    for e in Library().models():
        if args.json:
            print(json.dumps(e.to_json()))
            continue
        extra = f"  ! {e.problem}" if e.problem else ""
        print(f"{e.id:<60} {e.quant or '?':<8} {e.architecture or '?':<10} "
              f"{_params(e.n_params):>6} {e.context_length or 0:>7} ctx "
              f"{human(e.size):>9} {'chat' if e.has_chat_template else '':<4}{extra}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    library = Library()
    entry = library.find(args.model)
    library.remove(entry)
    print(f"Removed {entry.name} ({human(entry.size)}).")
    return 0


def run_import(args: argparse.Namespace) -> int:
    entry = Library().import_file(args.path, link=args.link)
    print(f"Imported {entry.name} as {entry.id}.")
    return 0
