"""``hearth-cli docs``: collections of documents to chat with, and ``generate --docs``.

``docs add NAME PATH...`` creates the collection (or adds to it) and indexes it with a
progress bar (rich, on stderr; stdout stays clean for ``--json``). ``docs reindex`` brings
it up to date (only changed files are read), ``docs search`` shows what a question
retrieves, ``docs watch`` keeps collections current by polling. The index is one SQLite
file in Hearth's data folder; everything here is also what the app's Documents pane does.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from core.chat.documents import (
    DEFAULT_BUDGET,
    DocumentsError,
    DocumentStore,
    Indexer,
    IndexProgress,
    IndexReport,
    Retriever,
    build_document_prompt,
)
from core.chat.documents.embedders import EmbedderChoice, choose_embedder
from core.chat.documents.template import SEED_TEMPLATE, check_template
from core.engine import GenerationRequest


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    docs = subparsers.add_parser("docs", help="collections of documents to chat with")
    sub = docs.add_subparsers(dest="docs_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="add files or folders to a collection and index them")
    add.add_argument("name")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _add_embed_argument(add)
    add.set_defaults(func=run_add)
    lst = sub.add_parser("list", help="collections, their folders and sizes")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)
    rm = sub.add_parser("remove", help="delete a collection from the index (files stay)")
    rm.add_argument("name")
    rm.set_defaults(func=run_remove)
    re_ = sub.add_parser("reindex", help="re-read what changed on disk")
    re_.add_argument("name")
    re_.add_argument("--full", action="store_true", help="re-read and re-chunk every file")
    _add_embed_argument(re_)
    re_.set_defaults(func=run_reindex)
    search = sub.add_parser("search", help="the passages a question retrieves, best first")
    search.add_argument("name")
    search.add_argument("query")
    search.add_argument("--top", type=_positive, default=5, metavar="K")
    search.add_argument("--mode", choices=("auto", "bm25", "dense", "hybrid"), default="auto")
    search.add_argument("--json", action="store_true",
                        help="a JSON list: source, page, lines, text, score")
    _add_embed_argument(search)
    search.set_defaults(func=run_search)
    watch = sub.add_parser("watch", help="keep collections up to date (polling) until Ctrl-C")
    watch.add_argument("names", nargs="*", metavar="NAME", help="default: every collection")
    watch.add_argument("--interval", type=_positive, default=30, metavar="SECONDS")
    watch.set_defaults(func=run_watch)
    tpl = sub.add_parser("template", help="show, set or reset the documents prompt template")
    group = tpl.add_mutually_exclusive_group()
    group.add_argument("--set", type=Path, metavar="FILE", help="use the template in FILE")
    group.add_argument("--reset", action="store_true", help="back to the seed's template")
    tpl.add_argument("--budget", type=_positive, help="default documents budget (tokens)")
    tpl.set_defaults(func=run_template)


def _add_embed_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embed-model", metavar="PATH|auto|none", default="auto",
                        help="embedding GGUF for vectors (auto: one from the library, if any)")


# -- indexing ------------------------------------------------------------------------------
class _Bar(AbstractContextManager["_Bar"]):
    """A rich progress bar on stderr for an indexing run (plain lines when not a tty)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[eta]}"),
                                 console=console, transient=True,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("scanning", total=None, eta="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, p: IndexProgress) -> None:
        eta = p.eta_s
        label = {"scan": "scanning", "index": "indexing", "embed": "embedding",
                 "done": "done"}[p.phase]
        self.progress.update(self.task, description=f"{p.collection}: {label}",
                             completed=p.done, total=p.total or None,
                             eta=f"ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta else "")


def _index(store: DocumentStore, name: str, embed: EmbedderChoice) -> IndexReport:
    with _Bar() as bar:
        report = Indexer(store, embedder=embed.embedder, progress=bar).index(name)
    for note in embed.notes:
        print(f"hearth-cli: {note}", file=sys.stderr)
    print(report.summary())
    for path, error in report.failed:
        print(f"  not indexed: {path}: {error}", file=sys.stderr)
    return report


def run_add(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.expanduser().exists()]
    if missing:
        raise DocumentsError(f"Not found: {', '.join(missing)}; nothing was added.")
    with DocumentStore() as store:
        collection = store.find_collection(args.name) or store.create_collection(args.name)
        store.add_roots(collection, args.paths)
        report = _index(store, collection.name, choose_embedder(args.embed_model, collection))
    return 1 if report.cancelled else 0


def run_reindex(args: argparse.Namespace) -> int:
    with DocumentStore() as store:
        collection = store.collection(args.name)
        if args.full:
            with store.transaction() as db:
                db.execute("UPDATE files SET mtime_ns = -1, sha256 = '' WHERE collection_id = ?",
                           (collection.id,))
        _index(store, collection.name, choose_embedder(args.embed_model, collection))
    return 0


def run_list(args: argparse.Namespace) -> int:
    with DocumentStore() as store:
        stats = [store.stats(c) for c in store.collections()]
    if args.json:
        print(json.dumps([{"name": s.collection.name, "roots": s.roots, "files": s.files,
                           "failed": s.failed, "chunks": s.chunks, "embedded": s.embedded,
                           "bytes": s.bytes, "embed_model": s.collection.embed_model or None}
                          for s in stats], indent=2))
        return 0
    if not stats:
        print("No collections yet: hearth-cli docs add NAME FOLDER")
    for s in stats:
        vectors = (f", {s.embedded}/{s.chunks} with vectors ({s.collection.embed_model})"
                   if s.collection.embed_model else ", keyword search only")
        failed = f", {s.failed} unreadable" if s.failed else ""
        print(f"{s.collection.name}: {s.files} files{failed}, {s.chunks} chunks, "
              f"{s.bytes / 1e6:.1f} MB{vectors}")
        for root in s.roots:
            print(f"  {root}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    with DocumentStore() as store:
        store.remove_collection(args.name)
    print(f"Removed the collection {args.name!r} (your files are untouched).")
    return 0


def run_search(args: argparse.Namespace) -> int:
    with DocumentStore() as store:
        embed = choose_embedder(args.embed_model, store.collection(args.name))
        result = Retriever(store, embed.embedder).search([args.name], args.query, args.top,
                                                         mode=args.mode)
    for note in [*embed.notes, *result.notes]:
        print(f"hearth-cli: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps([h.to_json() for h in result.hits], ensure_ascii=False, indent=2))
        return 0
    if not result.hits:
        print("No passage matches.")
    for rank, hit in enumerate(result.hits, start=1):
        c = hit.chunk
        page = f" page {c.page}," if c.page is not None else ""
        print(f"{rank}. {c.path} —{page} lines {c.line_start}-{c.line_end} "
              f"(score {hit.score:.4f}, {result.mode})")
        snippet = " ".join(c.text.split())
        print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from core.chat.documents.watch import FolderWatcher

    with DocumentStore() as store:
        names = args.names or [c.name for c in store.collections()]
        for name in names:
            store.collection(name)
        print(f"Watching {', '.join(names)} every {args.interval} s (Ctrl-C stops).",
              file=sys.stderr)
        watcher = FolderWatcher(Indexer(store), lambda: names, args.interval,
                                on_report=lambda r: print(r.summary(), flush=True),
                                on_error=lambda m: print(f"hearth-cli: {m}", file=sys.stderr))
        forever = threading.Event()
        try:
            watcher.start()
            forever.wait()
        finally:
            watcher.stop()
    return 0


def run_template(args: argparse.Namespace) -> int:
    with DocumentStore() as store:
        if args.set is not None:
            try:
                text = args.set.read_text(encoding="utf-8")
            except OSError as err:
                raise DocumentsError(f"Cannot read {args.set}: {err.strerror}.") from None
            store.set_setting("template", check_template(text))
        elif args.reset:
            store.set_setting("template", None)
        if args.budget is not None:
            store.set_setting("budget", str(args.budget))
        print(store.setting("template", SEED_TEMPLATE))
        print(f"\n(documents budget: {store.setting('budget', str(DEFAULT_BUDGET))} tokens)",
              file=sys.stderr)
    return 0


# -- generate --docs -------------------------------------------------------------------------
def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """``generate --docs NAME`` (repeatable) and ``--docs-budget N``."""
    parser.add_argument("--docs", action="append", metavar="NAME",
                        help="answer from a documents collection (with --chat)")
    parser.add_argument("--docs-budget", type=_positive, metavar="TOKENS",
                        help=f"tokens of documents in the prompt (default {DEFAULT_BUDGET})")


def documents_request(args: argparse.Namespace, request: GenerationRequest) -> GenerationRequest:
    """The request with the documents prompt in place of the question; prints the token
    breakdown and the sources (stderr, or a ``documents`` JSON event with ``--json``) and
    turns prompt-lookup speculation on unless another draft was asked for."""
    from dataclasses import replace

    from core.chat.documents.tokens import ModelTokenizer
    from core.models.bundled import default_model_path

    if request.messages is None:
        raise DocumentsError("--docs needs --chat (a question), not --prompt.")
    *history, question = request.messages
    with DocumentStore() as store:
        budget = args.docs_budget or int(store.setting("budget", str(DEFAULT_BUDGET)))
        template = store.setting("template", SEED_TEMPLATE)
        embed = choose_embedder("auto", store.collection(args.docs[0]))
        tokenizer = ModelTokenizer.open(args.model or default_model_path())
        try:
            prompt = build_document_prompt(args.docs, question.content, list(history), budget,
                                           tokenizer, store=store, template=template,
                                           embedder=embed.embedder,
                                           context_limit=args.ctx - args.max_tokens)
        finally:
            tokenizer.close()
    if prompt.draft and getattr(args, "draft", None) is None:
        args.lookup = True
    _show_prompt(prompt, args.json)
    return replace(request, messages=prompt.messages)


def _show_prompt(prompt: Any, as_json: bool) -> None:
    if as_json:
        event = {"event": "documents", "breakdown": prompt.breakdown.to_dict(),
                 "sources": [s.to_json() for s in prompt.sources], "mode": prompt.search.mode}
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    out = sys.stderr
    print(prompt.breakdown.text(), file=out)
    for s in prompt.sources:
        print(f"  [{s.n}] {s.label()} ({s.path})", file=out)
    if not prompt.sources:
        print("  no passage matches: the model is told to say \"not found\"", file=out)

