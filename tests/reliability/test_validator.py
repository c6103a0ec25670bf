"""The GGUF validator: fast on the real model, and one clear sentence for each bad shape.

Regression cases (``cases/*.json``, recipes written by the fuzzer or by hand) are replayed
here: each must be rejected with the recorded reason, or, if it passes the validator, must
load in a worker without killing it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.engine.runtime.model_file import check_model_file
from core.errors import ModelFileError
from core.gguf.validate import validate_gguf
from tests.fixtures.crashing_models import make_tiny_llama
from tests.reliability.gguf_fuzz import Case, Loader, Workbench, run_case

CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


def _one_line(err: pytest.ExceptionInfo[ModelFileError]) -> str:
    message = str(err.value)
    assert message and "\n" not in message and len(message) < 400, message
    return message


def test_default_model_passes_fast(default_model: Path) -> None:
    summary = validate_gguf(default_model)
    assert summary.architecture == "gemma3" and summary.n_tensors == 236
    assert summary.data_end == summary.file_size
    best = min(_timed(lambda: check_model_file(default_model)) for _ in range(5))
    assert best < 0.05, f"validation took {best * 1000:.1f} ms"


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def test_tiny_model_passes(tmp_path: Path) -> None:
    assert validate_gguf(make_tiny_llama(tmp_path / "t.gguf")).architecture == "llama"


@pytest.mark.parametrize("overrides,reason", [
    ({"tokenizer_model": "none"}, "no tokenizer"),
    ({"extra_metadata": {"tokenizer.ggml.scores": [0.0] * 10}}, "'tokenizer.ggml.scores' has 10"),
    ({"n_layer": 1, "extra_metadata": {"llama.block_count": 0}}, "0 layers"),
    ({"rms_eps": float("nan")}, "not a finite number"),
    ({"extra_metadata": {"llama.context_length": 0}}, "context length is 0"),
])
def test_hostile_metadata_is_refused_with_a_reason(tmp_path: Path, overrides: dict,
                                                   reason: str) -> None:
    path = make_tiny_llama(tmp_path / "bad.gguf", **overrides)
    with pytest.raises(ModelFileError) as err:
        validate_gguf(path)
    assert reason in _one_line(err)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    tiny = make_tiny_llama(tmp_path / "t.gguf").read_bytes()
    for name, data, reason in [
        ("cut-data", tiny[:-100], "truncated"),
        ("cut-header", tiny[:200], "truncated"),
        ("html", b"<!DOCTYPE html><html>404</html>", "not a GGUF"),
        ("bad-version", b"GGUF" + (7).to_bytes(4, "little") + bytes(16), "version 7"),
        ("huge-counts", b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 16, "claims"),
    ]:
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(data)
        with pytest.raises(ModelFileError) as err:
            validate_gguf(path)
        assert reason in _one_line(err), name


@pytest.fixture(scope="module")
def replay(default_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    bench = Workbench(default_model, tmp_path_factory.mktemp("cases"))
    loader = Loader()
    yield lambda case: run_case(case, bench, loader)
    loader.close()
    bench.close()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case(path: Path, replay) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    assert path.stat().st_size < 100_000
    outcome = replay(Case.from_json(data))
    assert outcome.verdict != "crashed", outcome.message
    if data.get("expect") == "reject":
        assert outcome.verdict == "rejected", (outcome.verdict, outcome.message)
        assert data["reason"] in outcome.message
        assert "\n" not in outcome.message
