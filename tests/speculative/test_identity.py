"""Greedy output with a draft model, the quantized twin and prompt lookup is the target's
plain greedy output, token for token: several prompts, 256 tokens, n_batch 64 (so prompts
and the cache both span several batches), and chat turns after rollbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import ChatMessage, Engine, EngineConfig, GenerationRequest
from core.engine.speculative.twin import ensure_twin
from tests.core.helpers import run
from tests.speculative.helpers import GREEDY, explain_divergence, greedy_tokens

N_TOKENS = 256
N_BATCH = 64
# A passage the answer can quote (prompt lookup's case) and longer than n_batch.
PASSAGE = (
    "Context: The lighthouse at Point Arden was built in 1871 from granite quarried on the "
    "island. Its lamp was first lit with whale oil, later with kerosene, and since 1934 with "
    "electricity. The keeper's cottage, restored in 1998, now houses a small museum about "
    "the shipwrecks of the bay, including the schooner Mary Ellen, lost in the storm of "
    "1889 with all eleven of her crew.\n"
    "Question: Quote the passage about the lamp and the cottage, then explain it.\nAnswer:"
)
PROMPTS = (PASSAGE, "Write a long story about a dragon who learns to cook.")


def _config(target: Path, **kw: object) -> EngineConfig:
    return EngineConfig(model_path=target, n_ctx=1024, n_batch=N_BATCH, n_ubatch=N_BATCH,
                        **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plain_f16(model_variants: dict[str, Path]) -> Iterator[Engine]:
    with Engine(_config(model_variants["F16"])) as engine:
        yield engine


@pytest.fixture(scope="module")
def reference_f16(plain_f16: Engine) -> dict[str, list[int]]:
    # The story prompt is covered by the twin test (on F32); both F16 modes use the passage.
    return {PASSAGE: greedy_tokens(plain_f16, PASSAGE, N_TOKENS)[0]}


def _assert_identical(plain_engine: Engine, spec_engine: Engine,
                      reference: dict[str, list[int]], prompts: tuple[str, ...]) -> list[dict]:
    stats = []
    for prompt in prompts:
        tokens, done = greedy_tokens(spec_engine, prompt, N_TOKENS)
        assert done.metrics.decode_tokens == N_TOKENS
        assert len(tokens) > N_BATCH * 3
        if tokens != reference[prompt]:
            pytest.fail(explain_divergence(plain_engine, reference[prompt], tokens))
        stats.append(done.metrics.speculative)
    return stats


def test_draft_model_output_is_the_targets(plain_f16: Engine, reference_f16: dict,
                                           model_variants: dict[str, Path]) -> None:
    with Engine(_config(model_variants["F16"], draft="model",
                        draft_model_path=model_variants["Q4_K_M"])) as spec:
        stats = _assert_identical(plain_f16, spec, reference_f16, PROMPTS[:1])
    for s in stats:
        assert s["kind"] == "model" and s["draft"] == model_variants["Q4_K_M"].name
        assert s["drafted"] > 0 and 0 < s["accepted"] <= s["drafted"]
        assert s["acceptance_rate"] == pytest.approx(s["accepted"] / s["drafted"], abs=1e-4)
        assert s["baseline_tok_s"] > 0 and s["speedup"] > 0


def test_prompt_lookup_output_is_the_targets(plain_f16: Engine, reference_f16: dict,
                                             model_variants: dict[str, Path]) -> None:
    with Engine(_config(model_variants["F16"], draft="lookup", draft_max=6)) as spec:
        stats = _assert_identical(plain_f16, spec, reference_f16, PROMPTS[:1])
    assert stats[0]["kind"] == "lookup" and stats[0]["draft"] == "prompt lookup"
    assert stats[0]["accepted"] > 0, "the quoting answer should reuse the passage"


def test_quantized_twin_of_f32_output_is_the_targets(model_variants: dict[str, Path]) -> None:
    target = model_variants["F32"]
    twin = ensure_twin(target)
    assert twin.is_file() and twin.parent == target.parent
    with Engine(_config(target)) as plain:
        reference = {PROMPTS[1]: greedy_tokens(plain, PROMPTS[1], N_TOKENS)[0]}
        with Engine(_config(target, draft="twin", draft_max=12)) as spec:
            (stats,) = _assert_identical(plain, spec, reference, PROMPTS[1:])
    assert stats["kind"] == "twin" and stats["draft"] == twin.name
    assert stats["acceptance_rate"] > 0.7, stats


def test_chat_turns_after_rollbacks_match_plain_chat(plain_f16: Engine,
                                                     model_variants: dict[str, Path]) -> None:
    """Three turns: each reply equals the plain engine's, the second and third turns reuse
    the cache, and the engine's token list is what the KV cache holds."""
    users = ["Name three rivers in Europe.", "Which of them is the longest?",
             "Say that again in one short sentence."]

    def chat(engine: Engine) -> tuple[list[str], list[int]]:
        engine.reset()
        messages: list[ChatMessage] = []
        replies, reused = [], []
        for text in users:
            messages.append(ChatMessage("user", text))
            _, done = run(engine, GenerationRequest(messages=list(messages), sampling=GREEDY,
                                                    max_tokens=48))
            replies.append(done.text)
            reused.append(done.metrics.cached_tokens)
            messages.append(ChatMessage("assistant", done.text))
            n_expected = done.metrics.prompt_tokens + done.metrics.decode_tokens - 1
            assert len(engine.sequence.tokens) == n_expected
        return replies, reused

    plain_replies, plain_reused = chat(plain_f16)
    with Engine(_config(model_variants["F16"], draft="model",
                        draft_model_path=model_variants["Q4_K_M"], draft_max=4)) as spec:
        spec_replies, spec_reused = chat(spec)
        assert spec.speculator is not None
        assert spec.speculator.draft_model is not None
        draft_cached = spec.speculator.draft_model.cached
        assert draft_cached == spec.sequence.tokens[: len(draft_cached)]
    assert spec_replies == plain_replies
    assert spec_reused == plain_reused
    assert all(n > 0 for n in spec_reused[1:])
