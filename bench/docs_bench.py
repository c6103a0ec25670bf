"""Documents retrieval, measured: recall@5 and MRR for BM25, dense and hybrid over text that
ships with Python; indexing throughput; query latency at 10,000+ chunks.

Corpus: the docstrings of ~150 standard-library modules (their public functions, classes
and methods; identical texts once), one ``.txt`` file each. The evaluation indexes the 121
questions' source documents plus a seeded sample of the others (600 documents); each
question (``bench/data/docs_questions.json``, written by hand, paraphrasing rather than
quoting) names the passage that answers it, and a retrieved chunk counts as a hit when it
holds that passage (or either half of it, for a passage cut by a chunk boundary). MRR is
over the top 10. Dense uses the bundled Gemma 3 270M mean-pooled: a base language model,
weak at retrieval, and the only GGUF on an offline machine; an embedding model
(nomic-embed-text, bge, EmbeddingGemma) is the one to measure when present
(``--embed-model PATH``). Rows: ``hybrid`` is what ``auto`` ranks (vectors fused only
from an embedding model, so with Gemma it is BM25, and says so); ``rrf`` fuses every list.
Latency: the evaluation corpus grown with the standard library's
own source files (as text) to 10,000+ chunks, every question asked three times.

Everything goes through the path a user takes: files on disk, ``Indexer``, ``Retriever``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.chat.documents import DocumentStore, Indexer, Retriever
from core.chat.documents.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP
from core.chat.documents.embedding import DocumentEmbedder

DATA = Path(__file__).resolve().parent / "data"
QUESTIONS = DATA / "docs_questions.json"
EVAL_DOCS = 600
LATENCY_CHUNKS = 10_000
_MODULE_TEXT = """json os os.path shutil textwrap re collections itertools functools subprocess
pathlib datetime random statistics string heapq bisect csv argparse logging threading queue
socket http.client urllib.parse urllib.request zipfile tarfile gzip hashlib base64 struct copy
pickle sqlite3 tempfile glob fnmatch time calendar decimal fractions inspect ast dis contextlib
dataclasses enum typing abc io codecs difflib pprint traceback warnings weakref signal
selectors email.message html xml.etree.ElementTree uuid secrets hmac platform operator shlex
configparser getpass locale gettext unittest doctest timeit pdb multiprocessing
concurrent.futures ipaddress mimetypes plistlib zlib lzma bz2 filecmp numbers graphlib tomllib
zoneinfo sched asyncio tokenize keyword linecache pkgutil importlib runpy site sysconfig trace
tracemalloc wave colorsys imaplib smtplib ftplib poplib http.server http.cookies
urllib.robotparser xml.dom.minidom netrc mailbox quopri binascii cmd code codeop optparse
fileinput stringprep reprlib types copyreg shelve dbm"""
MODULES = _MODULE_TEXT.split()


def _normal(text: str) -> str:
    return " ".join(text.split())


def _belongs(module: Any, obj: Any) -> bool:
    """Defined by the module (or its C accelerator, ``_json`` for ``json``), not imported."""
    owner = getattr(obj, "__module__", None) or ""
    base = module.__name__
    return (owner == base or owner.startswith(base + ".") or owner.lstrip("_") ==
            base.split(".")[-1] or bool(owner and base.startswith(owner)))


def docstring_corpus() -> dict[str, str]:
    """``module.name`` -> docstring, for the modules above (identical texts kept once)."""
    warnings.simplefilter("ignore")
    docs: dict[str, str] = {}
    seen: set[str] = set()

    def add(key: str, text: str | None, minimum: int) -> None:
        if text and len(text) >= minimum and _normal(text) not in seen:
            seen.add(_normal(text))
            docs[key] = text

    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        add(name, module.__doc__, 200)
        public = getattr(module, "__all__", None) or [n for n in vars(module)
                                                       if not n.startswith("_")]
        for member in sorted(set(public)):
            obj = getattr(module, member, None)
            if obj is None or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            if not _belongs(module, obj):
                continue
            add(f"{name}.{member}", inspect.getdoc(obj), 100)
            if inspect.isclass(obj):
                for attr, value in sorted(vars(obj).items()):
                    if not attr.startswith("_") and inspect.isroutine(value):
                        add(f"{name}.{member}.{attr}", inspect.getdoc(value), 100)
    return docs


def load_questions(docs: dict[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """The questions whose passage is in this Python's docstrings, and those whose is not
    (a Python version that reworded a docstring)."""
    usable, missing = [], []
    for q in json.loads(QUESTIONS.read_text()):
        text = docs.get(q["doc"], "")
        (usable if _normal(q["passage"]) in _normal(text) else missing).append(q)
    return usable, [q["doc"] for q in missing]


def write_files(folder: Path, docs: dict[str, str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for key, text in docs.items():
        data = text.encode("utf-8")
        (folder / f"{key}.txt").write_bytes(data)
        size += len(data)
    return size


def is_hit(chunk_text: str, passage: str) -> bool:
    text, p = _normal(chunk_text), _normal(passage)
    half = len(p) // 2
    return p in text or (half >= 20 and (p[:half] in text or p[half:] in text))


_LISTS = {"words": "BM25", "cjk": "trigram", "vectors": "vectors"}


def evaluate(retriever: Retriever, questions: list[dict[str, str]], mode: str) -> dict[str, Any]:
    """Recall@5 and MRR@10 of one search mode, with what it ranked (``fused``: the lists
    any question's search fused) and why a list was left out (the search's notes)."""
    hits5, rr, ranks = 0, 0.0, []
    fused: set[str] = set()
    notes: dict[str, None] = {}
    for q in questions:
        result = retriever.search(["eval"], q["question"], 10, mode=mode)  # type: ignore[arg-type]
        rank = next((i for i, h in enumerate(result.hits, start=1)
                     if is_hit(h.chunk.text, q["passage"])), None)
        ranks.append(rank)
        hits5 += rank is not None and rank <= 5
        rr += 1.0 / rank if rank else 0.0
        fused.update(result.fused)
        notes.update(dict.fromkeys(result.notes))
    return {"mode": result.mode, "recall@5": hits5 / len(questions), "mrr@10": rr / len(questions),
            "ranks": ranks, "fused": [x for x in _LISTS if x in fused], "notes": list(notes)}


def _embedder(path: Path | None) -> tuple[DocumentEmbedder | None, str]:
    """The embedder for dense rows, or why there is none."""
    try:
        from core.chat.documents.embedders import open_embedder
    except ImportError as err:  # pragma: no cover
        return None, f"no embedder ({err})"
    from core.models.bundled import default_model_path

    model = path or default_model_path()
    pooling = None if path else "mean"
    try:
        return open_embedder(model, pooling=pooling), model.name + (" mean-pooled"
                                                                    if pooling else "")
    except ImportError as err:
        return None, f"the engine has no embedding runtime yet ({err})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.docs_bench")
    parser.add_argument("--embed-model", type=Path, help="embedding GGUF (default: bundled "
                        "Gemma, mean-pooled)")
    parser.add_argument("--no-dense", action="store_true", help="BM25 only (fast)")
    args = parser.parse_args(argv)
    docs = docstring_corpus()
    questions, missing = load_questions(docs)
    rng = random.Random(17)
    targets = {q["doc"] for q in questions}
    others = sorted(k for k in docs if k not in targets)
    chosen = sorted(targets | set(rng.sample(others, max(0, EVAL_DOCS - len(targets)))))
    eval_docs = {k: docs[k] for k in chosen}
    out: dict[str, Any] = {"documents": len(eval_docs), "questions": len(questions),
                           "questions_missing": missing}
    embedder, embed_name = (None, "turned off (--no-dense)") if args.no_dense else \
        _embedder(args.embed_model)
    with tempfile.TemporaryDirectory(prefix="hearth-docs-bench-") as tmp:
        root = Path(tmp)
        # The evaluation index (with its vectors) is kept in .cache between runs, keyed by
        # the corpus and the embedding model: vectors of 800 chunks take the bundled model
        # minutes on two cores. A cached run says so and does not re-measure that time.
        cache = _cache_dir(eval_docs, embedder)
        cached = (cache / "done").is_file()
        write_files(cache / "eval", eval_docs)
        with DocumentStore(cache / "eval.sqlite3") as store:
            if store.find_collection("eval") is None:
                store.add_roots(store.create_collection("eval"), [cache / "eval"])
            t0 = time.perf_counter()
            report = Indexer(store, embedder=embedder).index("eval")
            (cache / "done").write_text("complete\n")
            out["eval_index_s"] = None if cached else time.perf_counter() - t0
            out["chunks"] = store.stats(store.collection("eval")).chunks
            out["embedded"] = report.embedded
            retriever = Retriever(store, embedder)
            rows = {"bm25": evaluate(retriever, questions, "bm25")}
            if embedder is not None:
                rows["dense"] = evaluate(retriever, questions, "dense")
                # "hybrid" is what the product ranks (auto: vectors fused only from an
                # embedding model); "rrf" fuses every list whatever the embedder
                rows["hybrid"] = evaluate(retriever, questions, "auto")
                rows["rrf"] = evaluate(retriever, questions, "hybrid")
                t1, c1 = time.perf_counter(), time.process_time()
                for q in questions[:30]:
                    embedder.query(q["question"])
                out["query_embed_ms"] = (time.perf_counter() - t1) * 1000 / 30
                out["query_embed_cpu_ms"] = (time.process_time() - c1) * 1000 / 30
                out["embedder_kind"] = embedder.kind
        out["rows"], out["embedder"] = rows, embed_name
        out["latency"] = _latency(root, docs, questions, embedder)
    _print(out)
    return out


def _cache_dir(docs: dict[str, str], embedder: DocumentEmbedder | None) -> Path:
    key = hashlib.sha256(json.dumps([sorted(docs.items()), DEFAULT_CHUNK_TOKENS,
                                     DEFAULT_OVERLAP, embedder.identity if embedder else ""]
                                    ).encode()).hexdigest()[:16]
    path = Path(__file__).resolve().parent.parent / ".cache" / "docs-bench" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stdlib_sources(limit_bytes: int) -> dict[str, str]:
    lib = Path(os.__file__).parent
    out: dict[str, str] = {}
    total = 0
    for path in sorted(lib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out["src." + ".".join(path.relative_to(lib).with_suffix("").parts)] = text
        total += len(text)
        if total >= limit_bytes:
            break
    return out


def _latency(root: Path, docs: dict[str, str], questions: list[dict[str, str]],
             embedder: DocumentEmbedder | None) -> dict[str, Any]:
    """Index throughput on a fresh corpus of 10,000+ chunks, then query latency on it."""
    import numpy as np

    files = {**docs, **_stdlib_sources(6_000_000)}
    size = write_files(root / "big", files)
    with DocumentStore(root / "big.sqlite3") as store:
        store.add_roots(store.create_collection("big"), [root / "big"])
        t0 = time.perf_counter()
        Indexer(store).index("big")
        seconds = time.perf_counter() - t0
        chunks = store.stats(store.collection("big")).chunks
        result: dict[str, Any] = {"files": len(files), "bytes": size, "chunks": chunks,
                                  "index_s": seconds, "files_per_s": len(files) / seconds,
                                  "mb_per_s": size / seconds / 1e6}
        retriever = Retriever(store)
        result["bm25_ms"] = _times(lambda q: retriever.search(["big"], q, 5, mode="bm25"),
                                   questions)
        if embedder is not None:
            # Vectors for 10,000+ chunks would take the bundled model most of an hour on
            # two cores: the stored vectors are random unit rows of the model's width (the
            # scoring cost is the same), the query is embedded for real each time.
            dim = int(embedder.query("width").shape[0])
            rng = np.random.default_rng(0)
            ids = [r[0] for r in store.query("SELECT id FROM chunks")]
            rows = rng.normal(size=(len(ids), dim)).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            collection = store.collection("big")
            with store.transaction() as db:
                db.execute("UPDATE collections SET embed_model = ? WHERE id = ?",
                           (embedder.identity, collection.id))
                db.executemany("UPDATE chunks SET vector = ? WHERE id = ?",
                               [(v.tobytes(), i) for v, i in zip(rows, ids, strict=True)])
                store.bump(db, collection.id)
            # Each question embedded for real once (the user's path), then again with its
            # vector remembered: the index's own share, apart from the model's compute.
            seen: dict[str, np.ndarray] = {}

            def remembered(texts: list[str]) -> np.ndarray:
                if len(texts) != 1:
                    return embedder.embed(texts)
                if texts[0] not in seen:
                    seen[texts[0]] = embedder.embed(texts)
                return seen[texts[0]]

            hybrid = Retriever(store, replace(embedder, embed=remembered))
            hybrid.search(["big"], "warm the vector cache", 5, mode="hybrid")
            search = lambda q: hybrid.search(["big"], q, 5, mode="hybrid")  # noqa: E731
            result["hybrid_ms"] = _times(search, questions, rounds=1)
            result["hybrid_search_ms"] = _times(search, questions)
            # the product's path with this embedder (auto: a generative one is not fused,
            # so its question is never embedded), every question new to it
            product = Retriever(store, embedder)
            result["auto_ms"] = _times(lambda q: product.search(["big"], q, 5), questions,
                                       rounds=1)
    return result


def _times(search: Any, questions: list[dict[str, str]], rounds: int = 3) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        for q in questions:
            t0 = time.perf_counter()
            search(q["question"])
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[int(len(samples) * 0.99) - 1],
            "n": len(samples)}


def _row_note(name: str, row: dict[str, Any], out: dict[str, Any]) -> str:
    """What a row ranked and why: the bench says what was fused, not only the score."""
    if name == "bm25":
        return "FTS5 BM25, Porter + unicode61 (the trigram list joins for CJK queries)"
    if name == "dense":
        stand_in = " — a generative model standing in: no embedding GGUF on this machine" \
            if out.get("embedder_kind") == "generative" else ""
        return f"{out['embedder']}{stand_in}"
    fused = " + ".join(_LISTS.get(x, x) for x in row["fused"]) or "nothing"
    if name == "rrf":
        return f"RRF k=60 of {fused}, forced (mode=hybrid)"
    why = f" ({row['notes'][0]})" if row["notes"] else ""
    return f"what auto ranks: {fused}{why}"


def _print(out: dict[str, Any]) -> None:
    print(f"\nDocuments retrieval — {out['questions']} questions over {out['documents']} "
          f"documents ({out['chunks']} chunks) from the standard library's docstrings")
    if out["questions_missing"]:
        print(f"  ({len(out['questions_missing'])} questions skipped: their passage is not in "
              f"this Python's docstrings: {', '.join(out['questions_missing'])})")
    print(f"{'retrieval':<10} {'recall@5':>9} {'MRR@10':>8}  what was ranked")
    rows = out["rows"]
    for name in ("bm25", "dense", "hybrid", "rrf"):
        if name in rows:
            r = rows[name]
            print(f"{name:<10} {r['recall@5']:>9.3f} {r['mrr@10']:>8.3f}  "
                  f"{_row_note(name, r, out)}")
        elif name != "rrf":
            print(f"{name:<10} {'—':>9} {'—':>8}  missing: {out['embedder']}")
    lat = out["latency"]
    print(f"\nIndexing {lat['files']} files, {lat['bytes'] / 1e6:.1f} MB -> {lat['chunks']} "
          f"chunks: {lat['files_per_s']:.0f} files/s, {lat['mb_per_s']:.2f} MB/s "
          "(BM25 + trigram, no vectors)")
    if "query_embed_ms" in out:
        took = ("vectors cached from an earlier run" if out["eval_index_s"] is None else
                f"{out['embedded']} chunks embedded with the text in {out['eval_index_s']:.0f} s")
        print(f"Embedding ({out['embedder']}): {took}; a question {out['query_embed_ms']:.1f} "
              f"ms wall, {out['query_embed_cpu_ms']:.1f} ms CPU")
    for key, label in (("bm25_ms", "BM25"), ("auto_ms", "auto with this embedder (the "
                       "product's path)"), ("hybrid_search_ms", "RRF with the question's "
                       "vector ready (the index's share)"), ("hybrid_ms", "RRF, question "
                       "embedded")):
        if key in lat:
            t = lat[key]
            print(f"Query latency at {lat['chunks']} chunks, {label}: p50 {t['p50']:.1f} ms, "
                  f"p99 {t['p99']:.1f} ms ({t['n']} queries)")
    goals = [("BM25 recall@5 >= 0.9", rows["bm25"]["recall@5"] >= 0.9)]
    if "hybrid" in rows:
        best = max(rows["bm25"]["recall@5"], rows["dense"]["recall@5"])
        goals.append(("hybrid (what auto ranks) recall@5 >= best of BM25 and dense",
                      rows["hybrid"]["recall@5"] >= best))
        if rows["hybrid"]["fused"] != rows["rrf"]["fused"]:
            print(f"  (auto left the vectors out; RRF of every list: "
                  f"{rows['rrf']['recall@5']:.3f} — the reason auto does)")
    enough = lat["chunks"] >= LATENCY_CHUNKS
    worst = max(lat.get("hybrid_search_ms", lat["bm25_ms"])["p99"], lat["bm25_ms"]["p99"],
                lat.get("auto_ms", lat["bm25_ms"])["p99"])
    goals.append((f"query p99 <= 50 ms at {lat['chunks']} chunks (BM25, auto; RRF with the "
                  "question's vector ready)", worst <= 50.0 and enough))
    if "hybrid_ms" in lat:  # the model's time to embed the question, on the user's path
        stand_in = " (a stand-in auto never embeds with)" \
            if out.get("embedder_kind") == "generative" else ""
        goals.append((f"query p99 <= 50 ms with the question embedded by "
                      f"{out['embedder']}{stand_in}",
                      lat["hybrid_ms"]["p99"] <= 50.0 and enough))
    for goal, ok in goals:
        print(f"  goal {goal}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1:])
