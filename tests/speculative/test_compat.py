"""The draft/target compatibility check, on real GGUF files (tiny ones written with gguf-py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.engine import Engine, EngineConfig
from core.engine.speculative.compat import (
    IncompatibleDraftError,
    check_files,
    compatibility_problem,
)
from tests.fixtures.crashing_models import make_tiny_llama, tiny_vocab


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


def test_a_draft_with_another_vocabulary_is_refused_before_its_weights_load(
        default_model: Path, tiny: Path) -> None:
    """The tiny llama numbers BOS 1 where Gemma uses 2: the first difference is named."""
    t0 = time.perf_counter()
    with pytest.raises(IncompatibleDraftError) as caught:
        Engine(EngineConfig(model_path=default_model, n_ctx=256, draft="model",
                            draft_model_path=tiny))
    message = str(caught.value)
    assert message.startswith(f"{tiny.name} cannot draft for {default_model.name}: ")
    assert "the BOS token ids differ (target 2, draft 1)" in message
    assert "same tokenizer" in message
    assert time.perf_counter() - t0 < 30


def test_one_token_spelled_differently_is_named(tiny: Path, tmp_path: Path) -> None:
    tokens, _, _ = tiny_vocab()
    changed = list(tokens)
    index = changed.index("▁hello")
    changed[index] = "▁hallo"
    other = make_tiny_llama(tmp_path / "other.gguf",
                            extra_metadata={"tokenizer.ggml.tokens": changed})
    problem = compatibility_problem(tiny, other)
    assert problem == f"token {index} differs (target '▁hello', draft '▁hallo')"
    with pytest.raises(IncompatibleDraftError, match=f"token {index} differs"):
        check_files(tiny, other)


def test_control_tokens_below_id_5_may_differ(tiny: Path, tmp_path: Path) -> None:
    """llama.cpp ignores ids 0-4 (families spell control tokens differently)."""
    tokens, _, _ = tiny_vocab()
    changed = ["<pad>", *tokens[1:]]
    other = make_tiny_llama(tmp_path / "other.gguf",
                            extra_metadata={"tokenizer.ggml.tokens": changed})
    assert compatibility_problem(tiny, other) is None


def test_add_bos_flag_and_vocabulary_size_are_checked(tiny: Path, tmp_path: Path) -> None:
    no_bos = make_tiny_llama(tmp_path / "no-bos.gguf", add_bos=False)
    assert compatibility_problem(tiny, no_bos) == (
        "the target adds a BOS token and the draft does not")


def test_same_family_in_other_precisions_is_compatible(
        model_variants: dict[str, Path]) -> None:
    assert compatibility_problem(model_variants["F32"], model_variants["Q4_K_M"]) is None
    assert compatibility_problem(model_variants["F16"], model_variants["Q8_0"]) is None


def test_gemma_and_tiny_vocabulary_sizes(default_model: Path, tiny: Path) -> None:
    """With BOS made equal, the next difference is the size (262,144 vs a few hundred tokens)."""
    same_ids = tiny.with_name("tiny-gemma-ids.gguf")
    make_tiny_llama(same_ids, bos_id=2, eos_id=1)
    problem = compatibility_problem(default_model, same_ids)
    assert problem is not None
    assert problem.startswith("the vocabulary sizes differ by more than 128 (target 262,144")
