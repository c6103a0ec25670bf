"""Indexing a collection: find its files, read, chunk and store what changed.

Incremental by size + mtime, then content hash: a file whose size and mtime are unchanged
is not opened; one whose mtime moved but whose bytes hash the same (a copy, a save without
changes) only gets its mtime updated; only a changed file is read and chunked again.
Deleted files leave the index; a folder that is missing (an unplugged drive) is reported
and its files kept, so indexing never throws away work because a disk was away.

Each file is one transaction in the store, so a kill at any point resumes with nothing
twice and nothing lost (gpt4all #1757 lost its index on restart). Vectors come after the
text, in their own resumable pass. Progress (with an ETA by bytes) goes to a callback, and
a ``threading.Event`` stops the run between two files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.chat.documents.chunking import Chunk, chunk_sections
from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.errors import ReadError
from core.chat.documents.readers import load_parsers, read_sections, supported
from core.chat.documents.store import Collection, DocumentStore, FileRow
from core.chat.documents.tokens import Tokenizer, bundled_tokenizer
from core.chat.documents.vectors import embed_pending, use_embedder

log = logging.getLogger("hearth.documents")

Phase = Literal["scan", "index", "embed", "done"]


@dataclass(frozen=True)
class IndexProgress:
    """Where a run is; ``done``/``total`` count files (chunks in the embed phase)."""

    collection: str
    phase: Phase
    done: int
    total: int
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""
    elapsed_s: float = 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (by bytes while indexing), None until known."""
        if self.phase == "index" and self.bytes_done and self.bytes_total:
            return self.elapsed_s * (self.bytes_total - self.bytes_done) / self.bytes_done
        if self.phase == "embed" and self.done and self.total:
            return self.elapsed_s * (self.total - self.done) / self.done
        return None

    def text(self) -> str:
        unit = "chunks embedded" if self.phase == "embed" else "files"
        parts = [f"{self.collection}: {self.done}/{self.total} {unit}"]
        eta = self.eta_s
        if eta is not None:
            parts.append(f"about {int(eta) // 60}:{int(eta) % 60:02d} left")
        return " · ".join(parts)


@dataclass
class IndexReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # new mtime, same bytes: not re-read
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    unchanged: int = 0
    chunks: int = 0
    bytes_read: int = 0
    embedded: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.embedded)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated",
                 f"{len(self.removed)} removed", f"{self.unchanged + len(self.touched)} "
                 "unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} could not be read")
        if self.embedded:
            parts.append(f"{self.embedded} chunks embedded")
        text = f"{self.collection}: " + ", ".join(parts) + f" ({self.seconds:.1f} s)"
        if self.missing_roots:
            text += "; missing (files kept): " + ", ".join(self.missing_roots)
        return text + ("; stopped before the end" if self.cancelled else "")


def scan_roots(roots: list[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Supported files under the roots (hidden files and folders skipped) with (size,
    mtime_ns), and the roots that are not there."""
    found: dict[str, tuple[int, int]] = {}
    missing: list[str] = []

    def add(path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # vanished between listing and stat: the next scan sees it
        found[str(path)] = (st.st_size, st.st_mtime_ns)

    for root in roots:
        path = Path(root)
        if path.is_file():
            add(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and supported(Path(name)):
                        add(Path(folder) / name)
        else:
            missing.append(root)
    return found, missing


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


_AHEAD = 4  # files read ahead of the one being stored


@dataclass(frozen=True)
class _Read:
    """A file read on a pool thread: ``chunks`` None = same bytes as stored."""

    size: int
    digest: str
    chunks: list[Chunk] | None
    error: str | None


class Indexer:
    """Indexes collections of one store; ``tokenizer`` defaults to the bundled model's."""

    def __init__(self, store: DocumentStore, tokenizer: Tokenizer | None = None,
                 embedder: DocumentEmbedder | None = None,
                 progress: Callable[[IndexProgress], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.store = store
        self._tokenizer = tokenizer
        self.embedder = embedder
        self.progress = progress or (lambda _p: None)
        self.cancel = cancel or threading.Event()

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = bundled_tokenizer()
        return self._tokenizer

    def index(self, name: str) -> IndexReport:
        """Bring the collection's index up to date with the disk."""
        collection = self.store.collection(name)
        report = IndexReport(collection.name)
        t0 = time.perf_counter()
        self.progress(IndexProgress(collection.name, "scan", 0, 0))
        roots = self.store.roots(collection)
        found, report.missing_roots = scan_roots(roots)
        stored = self.store.files(collection)
        present = [r for r in roots if r not in report.missing_roots]
        gone = [row for path, row in stored.items()
                if path not in found and _under(path, present)]
        if gone:
            self.store.delete_files(collection, [row.id for row in gone])
            report.removed = sorted(row.path for row in gone)
        work = [(p, s) for p, s in sorted(found.items())
                if p not in stored or (stored[p].size, stored[p].mtime_ns) != s]
        report.unchanged = len(found) - len(work)
        total_bytes = sum(size for _, (size, _m) in work)
        done_bytes = 0
        # Files are read and chunked two at a time (llama.cpp's tokenizer runs without the
        # GIL) and stored one by one, in order, so a kill still leaves a clean prefix.
        load_parsers({Path(p).suffix for p, _ in work})
        with ThreadPoolExecutor(2, thread_name_prefix="hearth-index") as pool:
            ahead: deque[tuple[str, int, int, Future[_Read]]] = deque()
            queue = iter(work)
            for i in range(len(work)):
                while len(ahead) < _AHEAD and (item := next(queue, None)) is not None:
                    path, (size, mtime_ns) = item
                    ahead.append((path, size, mtime_ns, pool.submit(
                        self._read, collection, path, stored.get(path))))
                if self.cancel.is_set():
                    report.cancelled = True
                    for *_, future in ahead:
                        future.cancel()
                    break
                path, size, mtime_ns, future = ahead.popleft()
                self.progress(IndexProgress(collection.name, "index", i, len(work),
                                            done_bytes, total_bytes, path,
                                            time.perf_counter() - t0))
                self._store(collection, path, size, mtime_ns, stored.get(path),
                            future.result(), report)
                done_bytes += size
        if self.embedder is not None and not report.cancelled:
            report.embedded = self._embed(collection, t0)
            report.cancelled = self.cancel.is_set()
        report.seconds = time.perf_counter() - t0
        self.progress(IndexProgress(collection.name, "done", len(work), len(work), done_bytes,
                                    total_bytes, "", report.seconds))
        log.info("%s", report.summary())
        for path, error in report.failed:
            log.warning("not indexed: %s: %s", path, error)
        return report

    def _read(self, collection: Collection, path: str, old: FileRow | None) -> _Read:
        """Read, hash and (when the bytes changed) chunk one file; on a pool thread."""
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            return _Read(0, "", None, f"cannot be read ({err.strerror or err})")
        digest = hashlib.sha256(data).hexdigest()
        if old is not None and old.sha256 == digest and old.error is None:
            return _Read(len(data), digest, None, None)  # same bytes: nothing to chunk
        try:
            sections = read_sections(Path(path), data)
            chunks = chunk_sections(sections, self.tokenizer, collection.chunk_tokens,
                                    collection.chunk_overlap)
        except ReadError as err:
            return _Read(len(data), digest, [], str(err))
        return _Read(len(data), digest, chunks, None)

    def _store(self, collection: Collection, path: str, size: int, mtime_ns: int,
               old: FileRow | None, read: _Read, report: IndexReport) -> None:
        report.bytes_read += read.size
        if not read.digest:  # could not even be read: reported, tried again next time
            report.failed.append((path, read.error or "cannot be read"))
            return
        if read.chunks is None:
            assert old is not None
            self.store.touch_file(old.id, size, mtime_ns)
            report.touched.append(path)
            return
        if read.error is not None:
            report.failed.append((path, read.error))
        self.store.replace_file(collection, path, size, mtime_ns, read.digest, read.chunks,
                                read.error)
        report.chunks += len(read.chunks)
        (report.updated if old is not None else report.added).append(path)

    def _embed(self, collection: Collection, t0: float) -> int:
        assert self.embedder is not None
        use_embedder(self.store, collection, self.embedder.identity)
        fresh = self.store.collection(collection.name)
        t_embed = time.perf_counter()

        def show(done: int, total: int) -> None:
            self.progress(IndexProgress(collection.name, "embed", done, total,
                                        elapsed_s=time.perf_counter() - t_embed))

        return embed_pending(self.store, fresh, self.embedder, show, self.cancel.is_set)
