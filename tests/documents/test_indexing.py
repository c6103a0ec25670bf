"""Indexing a written corpus of 212 files in six formats: everything found once, each fact
in the chunk that holds it with its page and lines, unreadable files reported."""

from __future__ import annotations

from pathlib import Path

from core.chat.documents import DocumentStore, Indexer, IndexReport, Retriever
from core.chat.documents.readers import SUPPORTED_SUFFIXES
from core.chat.documents.tokens import ModelTokenizer
from tests.documents.corpus import Fact, corpus_files


def test_the_corpus_is_indexed(corpus: tuple[Path, list[Fact]],
                               indexed: tuple[DocumentStore, IndexReport]) -> None:
    root = corpus[0]
    store, report = indexed
    expected = {str(p) for p in corpus_files(root)}
    assert len(expected) >= 200
    assert {Path(p).suffix for p in expected} >= {".txt", ".md", ".rst", ".html", ".pdf",
                                                   ".docx"}
    assert report.failed == []
    assert sorted(report.added) == sorted(expected)
    files = store.files(store.collection("corpus"))
    assert set(files) == expected  # hidden files and unsupported types left out
    assert all(row.n_chunks >= 1 and row.error is None for row in files.values())
    ords = store.query("SELECT file_id, COUNT(*), MIN(ord), MAX(ord) FROM chunks "
                       "GROUP BY file_id")
    assert all(n == hi + 1 and lo == 0 for _, n, lo, hi in ords)  # no gap, no duplicate


def test_each_fact_comes_back_with_its_place(corpus: tuple[Path, list[Fact]],
                                             indexed: tuple[DocumentStore, IndexReport]) -> None:
    store, _ = indexed
    retriever = Retriever(store)
    by_suffix: dict[str, int] = {}
    for fact in corpus[1][::7]:
        hits = retriever.search(["corpus"], f"Where is the {fact.code} archive kept?", 3).hits
        assert hits, fact.code
        best = hits[0].chunk
        assert best.path == str(fact.path)
        assert fact.sentence in " ".join(best.text.split())
        assert best.page == fact.page
        line = best.text.split("\n").index(next(ln for ln in best.text.split("\n")
                                                if fact.code in ln))
        assert best.line_start <= best.line_start + line <= best.line_end
        by_suffix[fact.path.suffix] = by_suffix.get(fact.path.suffix, 0) + 1
    assert set(by_suffix) == {".txt", ".md", ".rst", ".html", ".pdf", ".docx"}


def test_text_file_lines_are_the_files_lines(corpus: tuple[Path, list[Fact]],
                                             indexed: tuple[DocumentStore, IndexReport]) -> None:
    store, _ = indexed
    fact = next(f for f in corpus[1] if f.path.suffix == ".txt")
    hit = Retriever(store).search(["corpus"], fact.code, 1).hits[0].chunk
    lines = fact.path.read_text().split("\n")
    assert "\n".join(lines[hit.line_start - 1:hit.line_end]).strip() == hit.text.strip()


def test_html_markup_and_scripts_are_not_indexed(
        indexed: tuple[DocumentStore, IndexReport]) -> None:
    store, _ = indexed
    retriever = Retriever(store)
    assert retriever.search(["corpus"], "scriptonlyword", 5).hits == []
    assert retriever.search(["corpus"], "hiddenfileword", 5).hits == []
    html = store.query("SELECT c.text FROM chunks c JOIN files f ON f.id = c.file_id "
                       "WHERE f.path LIKE '%.html' LIMIT 20")
    assert html and not any("<p>" in t or "<li>" in t for (t,) in html)


def test_unchanged_corpus_reads_nothing(indexed: tuple[DocumentStore, IndexReport],
                                        doc_tokenizer: ModelTokenizer) -> None:
    store, first = indexed
    again = Indexer(store, doc_tokenizer).index("corpus")
    assert (again.added, again.updated, again.removed, again.touched) == ([], [], [], [])
    assert again.unchanged == len(first.added)
    assert again.bytes_read == 0


def test_unreadable_files_are_reported_and_the_rest_indexed(
        tmp_path: Path, doc_tokenizer: ModelTokenizer) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("a readable note about pelicans")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    (folder / "empty.txt").write_text("")
    with DocumentStore(tmp_path / "s.sqlite3") as store:
        store.add_roots(store.create_collection("mixed"), [folder])
        report = Indexer(store, doc_tokenizer).index("mixed")
        failed = dict(report.failed)
        assert set(failed) == {str(folder / "broken.pdf"), str(folder / "broken.docx")}
        assert "broken.pdf" in failed[str(folder / "broken.pdf")]
        assert "Word" in failed[str(folder / "broken.docx")]
        assert "2 could not be read" in report.summary()
        assert Retriever(store).search(["mixed"], "pelicans", 1).hits
        stats = store.stats(store.collection("mixed"))
        assert (stats.files, stats.failed) == (4, 2)
        # an unreadable file is not retried until it changes
        assert Indexer(store, doc_tokenizer).index("mixed").failed == []


def test_a_missing_folder_keeps_its_files(tmp_path: Path,
                                          doc_tokenizer: ModelTokenizer) -> None:
    folder = tmp_path / "drive"
    folder.mkdir()
    (folder / "note.md").write_text("the walrus ledger")
    with DocumentStore(tmp_path / "s.sqlite3") as store:
        store.add_roots(store.create_collection("drive"), [folder])
        Indexer(store, doc_tokenizer).index("drive")
        folder.rename(tmp_path / "unplugged")
        report = Indexer(store, doc_tokenizer).index("drive")
        assert report.missing_roots == [str(folder)] and report.removed == []
        assert "missing" in report.summary()
        assert Retriever(store).search(["drive"], "walrus", 1).hits


def test_supported_formats_are_the_issues() -> None:
    assert {".txt", ".md", ".rst", ".html", ".pdf", ".docx"} <= SUPPORTED_SUFFIXES


def test_parsers_are_imported_before_the_reading_threads_start() -> None:
    """``load_parsers`` imports what the given suffixes need (and nothing else) on the
    calling thread: a fresh interpreter shows which libraries it loaded."""
    import subprocess
    import sys

    from tests.paths import REPO_ROOT

    code = ("import sys; from core.chat.documents.readers import load_parsers; "
            "load_parsers({'.HTML', '.txt', '.weird'}); "
            "print(sorted(m for m in ('inscriptis', 'pypdf', 'docx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=60, check=True).stdout
    assert out.strip() == "['inscriptis']"
