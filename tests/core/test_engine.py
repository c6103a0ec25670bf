"""The engine on the real default model: determinism, templates, stops, UTF-8, KV reuse."""

from __future__ import annotations

import threading
import time

from core.engine import ChatMessage, Engine, GenerationRequest, SamplingParams
from tests.core.helpers import run

GREEDY = SamplingParams.greedy()


def test_greedy_completion_is_identical_twice(engine: Engine) -> None:
    request = GenerationRequest(prompt="The capital of France is", sampling=GREEDY,
                                max_tokens=48, reuse_cache=False)
    _, first = run(engine, request)
    _, second = run(engine, request)
    assert first.metrics.decode_tokens == 48
    assert first.text.strip(), "a greedy completion produced no text"
    assert first.text == second.text
    assert first.finish_reason == second.finish_reason == "length"


def test_greedy_is_identical_with_and_without_cache_reuse(engine: Engine) -> None:
    """Prefix reuse must not change the output: a warm cache gives the cold cache's text."""
    prompt = "Once upon a time, in a small village by the sea,"
    engine.reset()
    _, cold = run(engine, GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=32))
    _, warm = run(engine, GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=32))
    assert warm.metrics.cached_tokens == warm.metrics.prompt_tokens - 1
    assert warm.text == cold.text


def test_seeded_sampling_is_reproducible(engine: Engine) -> None:
    """Same seed, same prompt evaluated the same way -> same text. (A warm cache evaluates a
    different batch shape, whose kernels can differ in the last bits of the logits, so the
    comparison runs cold.)"""

    def sample(seed: int) -> str:
        params = SamplingParams(preset="top-p", temperature=1.0, seed=seed)
        return run(engine, GenerationRequest(prompt="My favourite food is", sampling=params,
                                             max_tokens=24, reuse_cache=False))[1].text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3)}) > 1, "different seeds gave identical text"


def test_chat_turn_uses_family_template_and_returns_text(engine: Engine) -> None:
    assert engine.model.chat_template is None  # the bundled GGUF carries none
    texts, done = run(engine, GenerationRequest(
        messages=[ChatMessage("system", "Answer briefly."), ChatMessage("user", "Hello!")],
        sampling=GREEDY, max_tokens=24))
    assert done.template == "gemma"
    assert done.text.strip()
    assert "".join(t.text for t in texts) == done.text


def test_stop_string_cuts_output_even_across_tokens(engine: Engine) -> None:
    base = GenerationRequest(prompt="The capital of France is", sampling=GREEDY, max_tokens=40,
                             reuse_cache=False)
    _, full = run(engine, base)
    stop = "country of"  # several tokens long, inside the unstopped output
    assert stop in full.text
    base.stop = [stop]
    texts, done = run(engine, base)
    assert done.finish_reason == "stop"
    assert done.text == full.text[: full.text.index(stop)]
    assert stop not in "".join(t.text for t in texts)


def test_multibyte_characters_never_split_across_events(engine: Engine) -> None:
    """Gemma spells rare emoji as byte tokens (4 tokens per bird here): events must still
    carry whole characters, and a character cut off by max_tokens is dropped, not mangled."""
    texts, done = run(engine, GenerationRequest(prompt="Emoji list: 🦜🦩🦚🦃🐓",
                                                sampling=GREEDY, max_tokens=30))
    assert done.metrics.decode_tokens == 30
    assert len(texts) < done.metrics.decode_tokens, "expected multi-token characters"
    assert any(ord(ch) > 0xFFFF for ch in done.text), "expected astral-plane characters"
    for event in texts:
        assert "\ufffd" not in event.text
    assert "".join(t.text for t in texts) == done.text


def test_second_chat_turn_evaluates_only_new_tokens(engine: Engine) -> None:
    engine.reset()
    history = [ChatMessage("user", "Name a colour.")]
    _, first = run(engine, GenerationRequest(messages=history, sampling=GREEDY, max_tokens=16))
    assert first.metrics.cached_tokens == 0
    assert first.metrics.prefill_tokens == first.metrics.prompt_tokens
    history += [ChatMessage("assistant", first.text), ChatMessage("user", "And another?")]
    _, second = run(engine, GenerationRequest(messages=history, sampling=GREEDY,
                                              max_tokens=16))
    m = second.metrics
    # Everything up to the first turn's prompt is reused; what is evaluated is only the
    # reply (re-tokenized) and the new user turn.
    assert m.cached_tokens >= first.metrics.prompt_tokens
    assert m.prefill_tokens == m.prompt_tokens - m.cached_tokens
    assert m.prefill_tokens < m.prompt_tokens - first.metrics.prompt_tokens + 8
    assert m.llama_prefill_tokens == m.prefill_tokens  # llama.cpp's own count agrees


def test_metrics_agree_with_llama_perf(engine: Engine) -> None:
    _, done = run(engine, GenerationRequest(prompt="Count: one, two, three,", sampling=GREEDY,
                                            max_tokens=40, reuse_cache=False))
    m = done.metrics
    assert m.prefill_tokens == m.prompt_tokens == m.llama_prefill_tokens
    assert m.decode_tokens == 40
    assert m.llama_decode_tokens == m.decode_tokens - 1  # the last token is never decoded
    assert len(m.token_latencies_ms) == m.decode_tokens
    assert 0 < m.ttft_ms <= m.total_ms
    assert m.decode_tok_s > 0 and m.prefill_tok_s > 0
    # Our decode clock brackets llama.cpp's decode time (it adds sampling and Python).
    assert m.decode_ms >= m.llama_decode_ms * 0.95


def test_cancel_from_another_thread_stops_decoding(engine: Engine) -> None:
    timer = threading.Timer(0.3, engine.cancel)
    timer.start()
    t0 = time.monotonic()
    texts, done = run(engine, GenerationRequest(prompt="Write a long story:", sampling=GREEDY,
                                                max_tokens=100_000, ignore_eos=True))
    assert done.finish_reason == "cancelled"
    assert time.monotonic() - t0 < 5
    assert done.text == "".join(t.text for t in texts)
    # The engine is usable afterwards and its cache is consistent with what it holds.
    _, after = run(engine, GenerationRequest(prompt="The capital of France is",
                                             sampling=GREEDY, max_tokens=8))
    assert after.metrics.decode_tokens == 8


def test_max_tokens_zero_only_prefills(engine: Engine) -> None:
    texts, done = run(engine, GenerationRequest(prompt="Hello", sampling=GREEDY, max_tokens=0))
    assert texts == [] and done.text == "" and done.finish_reason == "length"
