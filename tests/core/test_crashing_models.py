"""The crashing-model fixtures do what they promise to llama.cpp in a child process."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.crashing_models import ABORT_RETURNCODES, make_tiny_llama, run_probe


def test_aborting_model_kills_llama_cpp(aborting_model: Path) -> None:
    result = run_probe(aborting_model)
    assert result.returncode in ABORT_RETURNCODES, (result.returncode, result.stderr[-2000:])
    assert "loaded" in result.stdout  # it dies in tokenize, after a successful load
    assert "GGML_ASSERT" in result.stderr


def test_tiny_llama_loads_and_decodes(tmp_path: Path) -> None:
    path = make_tiny_llama(tmp_path / "tiny.gguf")
    result = run_probe(path)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "decode 0" in result.stdout


def test_tiny_llama_is_deterministic(tmp_path: Path) -> None:
    a = make_tiny_llama(tmp_path / "a.gguf")
    b = make_tiny_llama(tmp_path / "b.gguf")
    assert a.read_bytes() == b.read_bytes()
