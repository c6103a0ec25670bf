"""Mixed precision through llama.cpp's quantize parameters, read back from the header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from core.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
from core.errors import ConfigError
from core.gguf.quantize import REQUANTIZED_KEY, MixedPrecision, quantize_model
from core.gguf.reader import read_local


@pytest.fixture(scope="module")
def mixed(model_variants: dict[str, Path], tmp_path_factory) -> tuple[Path, str]:
    """The issue's example through the CLI: Q4_K_M, blocks 12-17 Q8_0, output F16."""
    out = tmp_path_factory.mktemp("mixed") / "mixed.gguf"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["quantize", str(model_variants["F32"]), str(out), "--type", "Q4_K_M",
                     "--tensor-type", r"blk\.(1[2-7])\.=Q8_0", "--output-type", "F16"])
    assert code == 0, err.getvalue()
    plain = out.with_name("plain.gguf")  # the same type without the mix, to compare with
    quantize_model(model_variants["F32"], plain, "Q4_K_M")
    return out, err.getvalue(), plain


def test_tensor_types_read_back_match_the_request(mixed) -> None:
    path, err, plain = mixed
    info, base = read_local(path), read_local(plain)
    assert info.file_type_name == "Q4_K_M"
    matrices = [t for t in info.tensors if t.layer is not None and len(t.shape) == 2]
    inside = [t for t in matrices if 12 <= t.layer <= 17]
    outside = [t for t in matrices if not 12 <= t.layer <= 17]
    assert inside and all(t.type == "Q8_0" for t in inside)
    assert outside and all(t.type == base.tensor(t.name).type for t in outside)
    assert any(base.tensor(t.name).type != "Q8_0" for t in inside)  # the mix changed them
    # Gemma's output head is its token embedding: the output type lands there, and says so.
    assert info.tensor("output.weight") is None
    assert info.tensor("token_embd.weight").type == "F16"
    assert "output head is token_embd.weight" in err and "78 tensors match" in err


def test_the_mixed_file_loads_and_generates(mixed) -> None:
    path, _, _ = mixed
    with Engine(EngineConfig(model_path=path, n_ctx=256)) as engine:
        *_, done = engine.generate(GenerationRequest(
            prompt="The capital of France is", max_tokens=8,
            sampling=SamplingParams.greedy()))
    assert done.finish_reason in ("length", "eos") and done.text.strip()


def test_bad_mixes_are_refused_before_any_work(default_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tensor type, e\.g\. Q4_K"):
        MixedPrecision.parse([r"blk\.1\.=Q4_K_M"])
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        MixedPrecision.parse([r"blk\.(1=Q8_0"])
    with pytest.raises(ConfigError, match="must look like"):
        MixedPrecision.parse(["Q8_0"])
    mix = MixedPrecision.parse([r"^decoder\.=Q8_0"])
    with pytest.raises(ConfigError, match="matches no tensor"):
        quantize_model(default_model, tmp_path / "x.gguf", "Q4_K_M", allow_requantize=True,
                       mix=mix)
    assert not list(tmp_path.iterdir())


def test_a_requantized_file_says_where_it_came_from(default_model, tmp_path, capsys) -> None:
    out = tmp_path / "q8.gguf"
    assert main(["quantize", str(default_model), str(out), "--type", "Q8_0",
                 "--allow-requantize"]) == 0
    capsys.readouterr()
    assert read_local(out).metadata[REQUANTIZED_KEY] == "Q4_K_M"
    assert json.dumps(read_local(out).metadata[REQUANTIZED_KEY]) == '"Q4_K_M"'
