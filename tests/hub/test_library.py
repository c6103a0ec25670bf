"""The library finds models in fixture folders laid out like the HF cache, an Ollama store,
LM Studio folders and Hearth's imports, with metadata read from each GGUF header."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.models.bundled import DEFAULT_MODEL_SHA256
from core.models.library import Library, LibraryError
from tests.hub.ggufs import write_tiny_gguf

COMMIT = "a" * 40


def _hf_file(cache: Path, repo: str, name: str, src: Path, sha: str) -> Path:
    root = cache / ("models--" + repo.replace("/", "--"))
    blob = root / "blobs" / sha
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        os.link(src, blob) if src.stat().st_dev == blob.parent.stat().st_dev else \
            blob.write_bytes(src.read_bytes())
    link = root / "snapshots" / COMMIT / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    return link


def _ollama(root: Path, name: str, tag: str, blob_src: Path, digest: str,
            host: str = "registry.ollama.ai", ns: str = "library") -> None:
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.symlink_to(blob_src)
    manifest = root / "manifests" / host / ns / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
         "size": blob_src.stat().st_size},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "e" * 64},
    ]}))


@pytest.fixture
def disks(tmp_path: Path, default_model: Path) -> dict[str, Path]:
    """Fixture folders for every source; returns their roots."""
    src = tmp_path / "src"
    cache, ollama = tmp_path / "hf", tmp_path / "ollama"
    lms_new, lms_old = tmp_path / "lmstudio", tmp_path / "lm-studio-cache"
    a = write_tiny_gguf(src / "a-Q8_0.gguf", n_bytes=64 << 10, ftype="Q8_0",
                        context_length=8192, seed=1)
    s1 = write_tiny_gguf(src / "big-F16-00001-of-00002.gguf", n_bytes=32 << 10, ftype="F16",
                         seed=2)
    s2 = write_tiny_gguf(src / "big-F16-00002-of-00002.gguf", n_bytes=32 << 10, ftype="F16",
                         seed=3)
    _hf_file(cache, "org/tiny-GGUF", "a-Q8_0.gguf", a, "1" * 64)
    _hf_file(cache, "org/tiny-GGUF", "big-F16-00001-of-00002.gguf", s1, "2" * 64)
    _hf_file(cache, "org/tiny-GGUF", "big-F16-00002-of-00002.gguf", s2, "3" * 64)
    _hf_file(cache, "org/tiny-GGUF", "README.md", a, "4" * 64)
    (cache / "models--org--tiny-GGUF" / "blobs" / ("5" * 64 + ".incomplete")).write_bytes(b"x")
    _ollama(ollama, "gemma3", "270m", default_model, DEFAULT_MODEL_SHA256)
    b = write_tiny_gguf(src / "b.gguf", n_bytes=16 << 10, ftype="Q4_K_M", arch="qwen2",
                        chat_template=False, seed=4)
    _ollama(ollama, "tinyqwen", "latest", b, "6" * 64, ns="someone")
    write_tiny_gguf(lms_new / "pub" / "model-GGUF" / "model-Q4_K_M.gguf", n_bytes=16 << 10,
                    ftype="Q4_K_M", seed=5)
    write_tiny_gguf(lms_new / "pub" / "model-GGUF" / "mmproj-model-F16.gguf", n_bytes=8 << 10,
                    ftype="F16", arch="clip", seed=6)
    write_tiny_gguf(lms_old / "old" / "legacy-GGUF" / "legacy.Q8_0.gguf", n_bytes=16 << 10,
                    seed=7)
    (lms_old / "old" / "legacy-GGUF" / "broken.gguf").write_bytes(b"GGUF-not-really")
    return {"hf": cache, "ollama": ollama, "lms_new": lms_new, "lms_old": lms_old,
            "imported": tmp_path / "imported", "src": src, "default": default_model}


def _library(d: dict[str, Path]) -> Library:
    return Library(hf_cache=d["hf"], ollama_roots=[d["ollama"]],
                   lmstudio_roots=[d["lms_new"], d["lms_old"]], imported_dir=d["imported"],
                   default_model=lambda: d["default"])


def test_every_source_is_found_with_its_metadata(disks):
    entries = {e.id: e for e in _library(disks).models()}
    assert set(entries) == {
        "default:gemma-3-270m-q4_k_m.gguf",
        f"hf:org/tiny-GGUF/a-Q8_0.gguf@{COMMIT[:12]}",
        f"hf:org/tiny-GGUF/big-F16.gguf@{COMMIT[:12]}",
        "ollama:gemma3:270m",
        "ollama:someone/tinyqwen:latest",
        "lmstudio:pub/model-GGUF/model-Q4_K_M.gguf",
        "lmstudio:old/legacy-GGUF/legacy.Q8_0.gguf",
        "lmstudio:old/legacy-GGUF/broken.gguf",
    }
    gemma = entries["ollama:gemma3:270m"]
    default = entries["default:gemma-3-270m-q4_k_m.gguf"]
    for e in (gemma, default):
        assert (e.architecture, e.quant, e.context_length) == ("gemma3", "Q4_K_M", 32768)
        assert e.n_params == 268_098_176
        assert not e.has_chat_template  # this build of the file carries no template
        assert e.size == disks["default"].stat().st_size
    assert not gemma.removable and not default.removable
    a = entries[f"hf:org/tiny-GGUF/a-Q8_0.gguf@{COMMIT[:12]}"]
    assert (a.quant, a.architecture, a.context_length, a.repo_id) == \
        ("Q8_0", "llama", 8192, "org/tiny-GGUF")
    assert a.removable and a.has_chat_template and a.n_params == (64 << 10) // 4
    split = entries[f"hf:org/tiny-GGUF/big-F16.gguf@{COMMIT[:12]}"]
    assert len(split.parts) == 2 and split.quant == "F16"
    assert split.n_params == 2 * (32 << 10) // 4  # both shards counted
    qwen = entries["ollama:someone/tinyqwen:latest"]
    assert (qwen.architecture, qwen.quant, qwen.has_chat_template) == ("qwen2", "Q4_K_M", False)
    broken = entries["lmstudio:old/legacy-GGUF/broken.gguf"]
    assert not broken.usable and "not a readable GGUF" in broken.problem


def test_scanning_is_fast_and_persists_nothing(disks, isolated_home):
    import time

    lib = _library(disks)
    lib.models()
    start = time.perf_counter()
    lib.models()
    assert time.perf_counter() - start < 1.0
    assert not [p for p in isolated_home.rglob("*") if p.is_file()]


def test_import_copy_and_link_then_remove(disks):
    lib = _library(disks)
    src = disks["src"] / "a-Q8_0.gguf"
    copied = lib.import_file(src)
    assert copied.source == "imported" and copied.quant == "Q8_0" and copied.removable
    assert not copied.path.is_symlink()
    with pytest.raises(LibraryError, match="already imported"):
        lib.import_file(src)
    lib.remove(copied)
    assert src.exists() and not copied.path.exists()
    linked = lib.import_file(src, link=True)
    assert linked.path.is_symlink()
    lib.remove(linked)
    assert src.exists() and not linked.path.exists()


def test_import_refuses_a_file_that_is_not_gguf(disks, tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    with pytest.raises(Exception, match="not a readable GGUF"):
        _library(disks).import_file(bad)


def test_remove_hf_model_deletes_unshared_blobs_only(disks):
    lib = _library(disks)
    entry = lib.find("org/tiny-GGUF/big-F16.gguf")
    blobs = [p.resolve() for p in entry.parts]
    lib.remove(entry)
    assert not any(b.exists() for b in blobs)
    assert (disks["hf"] / "models--org--tiny-GGUF" / "blobs" / ("1" * 64)).exists()
    assert "big-F16" not in " ".join(e.id for e in lib.models())


def test_other_apps_models_are_never_removed(disks):
    lib = _library(disks)
    with pytest.raises(LibraryError, match="ollama rm gemma3:270m"):
        lib.remove(lib.find("ollama:gemma3:270m"))
    with pytest.raises(LibraryError, match="LM Studio"):
        lib.remove(lib.find("model-Q4_K_M.gguf"))
    with pytest.raises(LibraryError, match="bundled"):
        lib.remove(lib.find("default:gemma-3-270m-q4_k_m.gguf"))
    assert disks["default"].exists()


def test_find_reports_unknown_and_ambiguous_names(disks):
    lib = _library(disks)
    with pytest.raises(LibraryError, match="No model called"):
        lib.find("nothing-like-this")
    with pytest.raises(LibraryError, match="matches 6 models"):
        lib.find(".gguf")


def test_offline_library_lists_hub_downloads(test_hub, monkeypatch, tmp_path):
    from core.models.hub.download import Downloader
    from tests.fixtures.hub_server import TINY_REPO

    Downloader().download(TINY_REPO, "tiny-Q4_K_M.gguf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lib = Library(ollama_roots=[], lmstudio_roots=[], default_model=None,
                  imported_dir=tmp_path / "imp")
    [entry] = lib.models()
    assert entry.source == "hf" and entry.quant == "Q4_K_M" and entry.repo_id == TINY_REPO
