"""Indexing that users can trust: a kill mid-way resumes with nothing twice and nothing
lost; an edited file is the only one read again; watched folders follow the disk."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.chat.documents import DocumentStore, Indexer, IndexReport, Retriever
from core.chat.documents.tokens import ModelTokenizer
from core.chat.documents.watch import FolderWatcher
from tests.documents.corpus import Fact, corpus_files
from tests.paths import REPO_ROOT


def _chunks_by_file(store: DocumentStore, name: str) -> dict[str, list[tuple]]:
    rows = store.query(
        "SELECT f.path, c.ord, c.page, c.line_start, c.line_end, c.text FROM chunks c "
        "JOIN files f ON f.id = c.file_id JOIN collections k ON k.id = f.collection_id "
        "WHERE k.name = ? ORDER BY f.path, c.ord", (name,))
    out: dict[str, list[tuple]] = {}
    for path, *rest in rows:
        out.setdefault(path, []).append(tuple(rest))
    return out


def _relative(chunks: dict[str, list[tuple]], root: Path) -> dict[str, list[tuple]]:
    return {str(Path(p).relative_to(root)): v for p, v in chunks.items()}


def test_a_kill_mid_way_resumes_with_nothing_twice_and_nothing_lost(
        tmp_path: Path, corpus: tuple[Path, list[Fact]], default_model: Path,
        doc_tokenizer: ModelTokenizer, indexed: tuple[DocumentStore, IndexReport]) -> None:
    db = tmp_path / "killed.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.documents.index_child", str(db), str(corpus[0]),
         str(default_model)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert child.stdout is not None
    started = 0
    for line in child.stdout:  # let it index a good part, then kill it without warning
        if line.strip().isdigit():
            started = int(line)
        if started >= 60:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    total = len(corpus_files(corpus[0]))
    with DocumentStore(db) as store:
        assert store.integrity_check() == "ok"
        done_before = len(store.files(store.collection("killed")))
        assert 50 <= done_before < total  # killed mid-way, with committed files
        report = Indexer(store, doc_tokenizer).index("killed")
        assert len(report.added) == total - done_before  # only what was missing
        assert report.unchanged == done_before
        resumed = _chunks_by_file(store, "killed")
        fts = store.query("SELECT COUNT(*) FROM chunks_fts")[0][0]
        chunk_count = store.query("SELECT COUNT(*) FROM chunks")[0][0]
        assert fts == chunk_count  # the word index holds every chunk once
        assert store.query("SELECT COUNT(*) FROM chunks_tri WHERE chunks_tri MATCH "
                           "'\"zq017ular\"'")[0][0] == 1
    reference = _chunks_by_file(indexed[0], "corpus")
    assert resumed == reference  # the same chunks as an uninterrupted run, file by file


def test_an_edited_file_is_the_only_one_read_again(
        tmp_path: Path, corpus: tuple[Path, list[Fact]], doc_tokenizer: ModelTokenizer) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(corpus[0] / "txt", folder)
    with DocumentStore(tmp_path / "s.sqlite3") as store:
        store.add_roots(store.create_collection("edits"), [folder])
        Indexer(store, doc_tokenizer).index("edits")
        before = store.query("SELECT f.path, c.id FROM chunks c JOIN files f ON f.id = c.file_id"
                             )
        edited, touched = corpus_files(folder)[:2]
        edited.write_text(edited.read_text() + "\nA new line about the obsidian heron.\n")
        os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime
        report = Indexer(store, doc_tokenizer).index("edits")
        assert report.updated == [str(edited)]
        assert report.touched == [str(touched)]
        assert report.added == report.removed == []
        after = store.query("SELECT f.path, c.id FROM chunks c JOIN files f ON f.id = c.file_id")
        assert {r for r in before if r[0] != str(edited)} == \
            {r for r in after if r[0] != str(edited)}  # other files' chunks untouched
        hits = Retriever(store).search(["edits"], "obsidian heron", 1).hits
        assert hits and hits[0].chunk.path == str(edited)


def test_watched_folders_follow_added_changed_and_deleted_files(
        tmp_path: Path, doc_tokenizer: ModelTokenizer) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "keep.txt").write_text("the amber falcon")
    (folder / "gone.txt").write_text("the violet otter")
    with DocumentStore(tmp_path / "s.sqlite3") as store:
        store.add_roots(store.create_collection("w"), [folder])
        reports: list[IndexReport] = []
        watcher = FolderWatcher(Indexer(store, doc_tokenizer), lambda: ["w"], interval_s=0.05,
                                on_report=reports.append)
        watcher.run_once()
        (folder / "gone.txt").unlink()
        (folder / "sub").mkdir()
        (folder / "sub" / "new.md").write_text("the scarlet lynx")
        (folder / "keep.txt").write_text("the amber falcon and the jade tortoise")
        watcher.start()
        deadline = time.monotonic() + 30
        while len(reports) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher.stop()
        second = reports[1]
        assert second.removed == [str(folder / "gone.txt")]
        assert second.added == [str(folder / "sub" / "new.md")]
        assert second.updated == [str(folder / "keep.txt")]
        retriever = Retriever(store)
        assert retriever.search(["w"], "violet otter", 3).hits == []
        assert retriever.search(["w"], "scarlet lynx", 1).hits
        assert retriever.search(["w"], "jade tortoise", 1).hits
