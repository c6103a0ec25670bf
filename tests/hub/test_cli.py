"""hearth-cli search / files / download / models / rm / import, run in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli import main
from core.models.bundled import DEFAULT_MODEL_NAME
from tests.fixtures.hub_server import TINY_REPO
from tests.hub.ggufs import write_tiny_gguf


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_model: Path,
         isolated_home: Path) -> Path:
    """A fake user home (no real Ollama/LM Studio) and the default model linked in place."""
    fake = tmp_path / "user"
    fake.mkdir()
    monkeypatch.setenv("HOME", str(fake))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    models = isolated_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / DEFAULT_MODEL_NAME).symlink_to(default_model)
    shutil.copy(default_model.with_name(default_model.name + ".verified"),
                models / (DEFAULT_MODEL_NAME + ".verified"))
    return fake


def test_search_and_files(test_hub, capsys):
    assert main(["search", "tiny", "--json"]) == 0
    [hit] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hit["repo_id"] == TINY_REPO and hit["downloads"] == 50
    assert main(["files", TINY_REPO]) == 0
    out = capsys.readouterr().out
    assert "licence: apache-2.0" in out and "tiny-F16.gguf" in out and "split" in out


def test_download_json_events_then_models_and_rm(test_hub, home, capsys):
    assert main(["download", TINY_REPO, "tiny-F16-00002-of-00002.gguf", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = [e for e in events if e["kind"] == "done"]
    assert [e["filename"] for e in done] == ["tiny-F16-00001-of-00002.gguf",
                                             "tiny-F16-00002-of-00002.gguf"]
    assert all(Path(e["path"]).is_file() for e in done)
    assert main(["models", "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["source"] for e in entries] == ["default", "hf"]
    assert entries[1]["quant"] == "F16" and len(entries[1]["parts"]) == 2
    assert main(["rm", "tiny-F16.gguf"]) == 0
    assert "Removed" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_import_and_errors_are_one_line(test_hub, home, tmp_path, capsys):
    src = write_tiny_gguf(tmp_path / "mine-Q8_0.gguf", n_bytes=16 << 10)
    assert main(["import", str(src)]) == 0
    assert "imported:mine-Q8_0.gguf" in capsys.readouterr().out
    assert main(["rm", "default:" + DEFAULT_MODEL_NAME]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hearth-cli: error: ") and err.count("\n") == 1
    assert main(["download", TINY_REPO, "../evil.gguf"]) == 1
    assert "Refusing" in capsys.readouterr().err
