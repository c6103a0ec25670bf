"""``hearth-cli docs`` and ``generate --docs``: indexing with its progress bar and a generation
as a user runs them (subprocesses); the other commands in-process (``cli.main``: the same
parser and error handling, without paying the interpreter's start for each)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from core.chat.documents import resolve_citations
from core.chat.documents.sources import Source
from tests.documents.corpus import Fact
from tests.paths import REPO_ROOT


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Path:
    """A Hearth home whose models folder already has the verified bundled model."""
    home = tmp_path_factory.mktemp("cli-home")
    (home / "models").mkdir()
    (home / "models" / default_model.name).symlink_to(default_model)
    note = default_model.with_name(default_model.name + ".verified")
    shutil.copy(note, home / "models" / note.name)
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HEARTH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=240, env=env, cwd=REPO_ROOT)


def in_process(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("HEARTH_HOME", str(home))
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(rc: int, err: str, phrase: str) -> None:
    assert rc != 0 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and phrase in lines[0], err


def test_add_list_search_reindex_remove(home: Path, corpus: tuple[Path, list[Fact]],
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root, facts = corpus
    added = cli(home, "docs", "add", "notes", str(root / "md"), str(root / "pdf"))
    assert added.returncode == 0, added.stderr
    assert "notes: 65 added" in added.stdout

    def run(*args: str) -> tuple[int, str, str]:
        return in_process(home, monkeypatch, capsys, *args)

    listed = json.loads(run("docs", "list", "--json")[1])
    assert [(c["name"], c["files"], c["failed"]) for c in listed] == [("notes", 65, 0)]
    assert sorted(listed[0]["roots"]) == sorted([str(root / "md"), str(root / "pdf")])
    pdf_fact = next(f for f in facts if f.path.suffix == ".pdf")
    rc, out, err = run("docs", "search", "notes", f"where is {pdf_fact.code}", "--top", "3",
                       "--json")
    assert rc == 0, err
    hits = json.loads(out)
    assert 1 <= len(hits) <= 3
    best = hits[0]
    assert {"source", "page", "lines", "text", "score"} <= set(best)
    assert best["source"] == str(pdf_fact.path) and best["page"] == 2
    assert pdf_fact.code in best["text"] and best["lines"][0] <= best["lines"][1]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert "0 added, 0 updated, 0 removed, 65 unchanged" in run("docs", "reindex", "notes")[1]
    one_error_line(*run("docs", "search", "nope", "x")[::2], "no collection named 'nope'")
    one_error_line(*run("docs", "add", "notes", "/no/such/folder")[::2], "Not found")
    assert run("docs", "remove", "notes")[0] == 0
    assert json.loads(run("docs", "list", "--json")[1]) == []


def test_generate_with_docs_sends_the_documents_prompt(
        home: Path, default_model: Path, corpus: tuple[Path, list[Fact]],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root, facts = corpus
    assert in_process(home, monkeypatch, capsys, "docs", "add", "gen", str(root / "txt"))[0] == 0
    fact = next(f for f in facts if f.path.suffix == ".txt")
    proc = cli(home, "generate", "--model", str(default_model), "--docs", "gen", "--chat",
               f"Where is the {fact.code} archive kept?", "--docs-budget", "300",
               "--temperature", "0", "--max-tokens", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    documents, done = events[0], events[-1]
    assert documents["event"] == "documents" and done["event"] == "done"
    assert documents["breakdown"]["documents"] <= 300
    assert documents["sources"][0]["source"] == str(fact.path)
    assert fact.code in documents["sources"][0]["text"]
    assert done["metrics"]["speculative"]["kind"] == "lookup"  # on by default for documents
    assert done["metrics"]["prompt_tokens"] == documents["breakdown"]["prompt_total"]
    sources = [Source(s["n"], s["source"], s["page"], tuple(s["lines"]), s["text"],
                      tuple(s["chunk_ids"]), s["collection"], s["score"], s["kind"])
               for s in documents["sources"]]
    cited = resolve_citations(done["text"], sources)  # whatever the small model wrote
    assert all(c.n <= len(sources) for c in cited.cited)
    rc, _, err = in_process(home, monkeypatch, capsys, "generate", "--docs", "gen", "--prompt", "x")
    one_error_line(rc, err, "--docs needs --chat")
