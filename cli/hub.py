"""``hearth-cli search | files | download``: the Hugging Face hub from the command line.

Examples::

    hearth-cli search gemma --sort likes
    hearth-cli files unsloth/gemma-3-270m-it-GGUF --headers
    hearth-cli download unsloth/gemma-3-270m-it-GGUF gemma-3-270m-it-Q4_K_M.gguf
    hearth-cli download REPO MODEL-00001-of-00003.gguf --json   # all shards, JSON events

Downloads go to the Hugging Face cache (HF_HOME / HF_HUB_CACHE) and resume where they
stopped after Ctrl-C, a crash or a dropped connection: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli.progress import Bar, progress_bar
from core.models.hub.download import Downloader
from core.models.hub.events import DownloadEvent
from core.models.hub.files import HubModel, list_models
from core.models.hub.search import SORTS, repo_details, search_models


def human(n: float) -> str:
    """Bytes in a short human form (decimal units, as download sizes are usually shown)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.RawTextHelpFormatter
    p = subparsers.add_parser("search", help="search GGUF models on the hub",
                              description=__doc__, formatter_class=fmt)
    p.add_argument("text", help="words in the repo name")
    p.add_argument("--sort", choices=list(SORTS), default="downloads")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_search)

    p = subparsers.add_parser("files", help="list a repo's GGUF models",
                              description=__doc__, formatter_class=fmt)
    p.add_argument("repo", help="repo id, e.g. org/name-GGUF")
    p.add_argument("--revision", default="main")
    p.add_argument("--headers", action="store_true",
                   help="read each model's GGUF header to confirm its quant (a few MiB each)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_files)

    p = subparsers.add_parser("download", help="download a model into the HF cache",
                              description=__doc__, formatter_class=fmt)
    p.add_argument("repo", help="repo id, e.g. org/name-GGUF")
    p.add_argument("file", help="file name (any shard of a split model fetches all shards)")
    p.add_argument("--revision", default="main")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    p.set_defaults(func=run_download)


def run_search(args: argparse.Namespace) -> int:
    hits = search_models(args.text, sort=args.sort, limit=args.limit)
    for h in hits:
        if args.json:
            print(json.dumps({"repo_id": h.repo_id, "downloads": h.downloads, "likes": h.likes,
                              "last_modified": h.last_modified.isoformat()
                              if h.last_modified else None, "gated": h.gated}))
        else:
            gated = "  (gated)" if h.gated else ""
            print(f"{h.repo_id:<50} {h.downloads:>10,} dl {h.likes:>6,} likes{gated}")
    if not hits and not args.json:
        print(f"No GGUF repos match {args.text!r}.", file=sys.stderr)
    return 0


def run_files(args: argparse.Namespace) -> int:
    models = list_models(args.repo, revision=args.revision, read_headers=args.headers)
    if args.json:
        for m in models:
            print(json.dumps({"name": m.name, "size": m.size, "quant": m.quant,
                              "quant_confirmed": m.quant_confirmed, "projector": m.projector,
                              "complete": m.complete, "cached": m.cached,
                              "parts": [{"path": p.path, "size": p.size, "sha256": p.sha256}
                                        for p in m.parts]}))
        return 0
    try:
        details = repo_details(args.repo, revision=args.revision)
        print(f"{details.repo_id}  licence: {details.license or 'unknown'}"
              f"{'  (gated)' if details.gated else ''}")
        if details.summary:
            print(f"  {details.summary}")
    except Exception:  # the card is a nicety; the file list is the answer
        pass
    for m in models:
        notes = [n for n, on in (("split", len(m.parts) > 1), ("projector", m.projector),
                                 ("incomplete", not m.complete), ("cached", m.cached)) if on]
        quant = (m.quant or "?") + ("" if m.quant_confirmed or not args.headers else "?")
        print(f"  {m.name:<48} {quant:<9} {human(m.size):>9}  {' '.join(notes)}")
    return 0


def _find_model(repo: str, name: str, revision: str) -> HubModel | None:
    for m in list_models(repo, revision=revision):
        if m.name == name or any(p.path == name for p in m.parts):
            return m
    return None


def _show(bar: Bar, e: DownloadEvent) -> None:
    """One download event on the bar (bytes of the current file; a resumed file starts
    where it stopped)."""
    name = e.filename[-48:]
    if e.kind in ("start", "progress", "resumed"):
        bar.update(e.done, total=e.total or None, description=name)
    elif e.kind in ("retry", "refetch", "paused"):
        bar.note(f"{e.kind}: {e.message}")
    elif e.kind == "verifying":
        bar.update(e.done, total=e.total or None, description=f"{name} (verifying sha256)")
    elif e.kind == "done":
        bar.update(e.total or e.done, total=e.total or None, description=name)


def run_download(args: argparse.Namespace) -> int:
    model = _find_model(args.repo, args.file, args.revision)
    files = [p.path for p in model.parts] if model else [args.file]
    first = None
    for name in files:
        with progress_bar(name, unit="bytes", enabled=None if not args.json else False) as bar:
            for event in Downloader().iter_download(args.repo, name, args.revision):
                if args.json:
                    print(json.dumps(event.to_json()), flush=True)
                else:
                    _show(bar, event)
                if event.kind == "done" and first is None:
                    first = event.path
    if not args.json:
        print(first)
    return 0
