"""Grammar-constrained sampling: the drawn token is checked against the grammar, and the
grammar masks every candidate only when it refuses it (llama.cpp's ``grammar_first=false``).

Each case decodes the real default model step by step in a context of its own, sampling with
the chain the engine builds and with the reference chain (the grammar inside it, masking all
262,144 candidates every step): under greedy the tokens must be the same, the text must
validate against the schema, and sampling must cost a fraction of the reference's CPU time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema_rs
import llama_cpp
import pytest
from llama_cpp.llama_grammar import json_schema_to_gbnf

from core.engine.runtime.chain import build_chain
from core.engine.runtime.context import Context
from core.engine.runtime.grammar_sampler import grammar_dead, refusals
from core.engine.runtime.model import LoadedModel
from core.engine.sampling import SamplingParams

SCHEMA = {"type": "object",
          "properties": {"city": {"type": "string", "maxLength": 30},
                         "population": {"type": "integer", "minimum": 0},
                         "landmarks": {"type": "array", "items": {"type": "string"},
                                       "maxItems": 3}},
          "required": ["city", "population", "landmarks"], "additionalProperties": False}
GRAMMAR = json_schema_to_gbnf(json.dumps(SCHEMA))
PROMPT = "Describe Paris as JSON:"
MAX_STEPS = 80


@pytest.fixture(scope="module")
def lm(default_model: Path) -> Iterator[tuple[LoadedModel, Context]]:
    with LoadedModel(default_model, n_gpu_layers=0) as model:
        ctx = Context(model, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=1, threads=1)
        yield model, ctx
        ctx.close()


def generate(lm: tuple[LoadedModel, Context], chain: object) -> tuple[list[int], float]:
    """Decode with ``chain`` until end of generation: the tokens, and the
    sampling thread's CPU seconds per token (sampling runs on the calling thread)."""
    model, ctx = lm
    ctx.clear()
    prompt = model.tokenize(PROMPT, add_special=True)
    arr = (llama_cpp.llama_token * len(prompt))(*prompt)
    assert ctx.decode(llama_cpp.llama_batch_get_one(arr, len(prompt))) == 0
    tokens: list[int] = []
    cpu = 0.0
    for _ in range(MAX_STEPS):
        t0 = time.thread_time()
        token = llama_cpp.llama_sampler_sample(chain, ctx.ptr, -1)
        cpu += time.thread_time() - t0
        if model.is_eog(token):
            break
        tokens.append(token)
        one = (llama_cpp.llama_token * 1)(token)
        assert ctx.decode(llama_cpp.llama_batch_get_one(one, 1)) == 0
    return tokens, cpu / max(1, len(tokens) + 1)


def text_of(model: LoadedModel, tokens: list[int]) -> str:
    return b"".join(model.piece(t) for t in tokens).decode("utf-8")


@pytest.mark.parametrize("repeat_penalty", [1.0, 1.3])
def test_greedy_grammar_output_is_the_grammar_first_output_and_much_cheaper(
        lm: tuple[LoadedModel, Context], repeat_penalty: float) -> None:
    params = SamplingParams(preset="greedy", temperature=0.0, grammar=GRAMMAR,
                            repeat_penalty=repeat_penalty)
    model = lm[0]
    reference = build_chain(params, model, grammar_first=True)
    fast = build_chain(params, model)
    try:
        want, cpu_reference = generate(lm, reference)
        got, cpu_fast = generate(lm, fast)
        drawn, refused, full = refusals(fast)
    finally:
        llama_cpp.llama_sampler_free(reference)
        llama_cpp.llama_sampler_free(fast)
    assert got == want
    data = json.loads(text_of(model, got))
    jsonschema_rs.validate(SCHEMA, data)
    # The case means something only if the model's own first choice was refused sometimes
    # (it writes spaces the schema's compact JSON does not allow, among others).
    assert drawn == len(got) + 1 and refused > 0
    print(f"\nrepeat_penalty {repeat_penalty}: {len(got)} tokens, {refused} refused, "
          f"{full} masked over every candidate; sampling CPU {cpu_reference * 1e3:.2f} -> "
          f"{cpu_fast * 1e3:.2f} ms/token")
    assert cpu_fast <= 0.25 * cpu_reference


def test_sampled_grammar_output_validates_and_repeats_for_a_seed(
        lm: tuple[LoadedModel, Context]) -> None:
    """A sampled draw the grammar refuses is drawn again over the allowed tokens only, as
    llama.cpp does: every reply still validates, and a seed reproduces it."""
    texts = []
    for seed in (7, 7, 8):
        params = SamplingParams(preset="top-p", temperature=0.9, seed=seed, grammar=GRAMMAR)
        chain = build_chain(params, lm[0])
        try:
            tokens, _ = generate(lm, chain)
            _, refused, full = refusals(chain)
        finally:
            llama_cpp.llama_sampler_free(chain)
        assert refused == full  # sampled: llama.cpp's re-draw, over every candidate
        text = text_of(lm[0], tokens)
        jsonschema_rs.validate(SCHEMA, json.loads(text))
        texts.append(text)
    assert texts[0] == texts[1]
    assert texts[2] != texts[0], "different seeds gave the same sampled reply"


def test_a_cloned_grammar_sampler_continues_from_the_same_state(
        lm: tuple[LoadedModel, Context]) -> None:
    """``llama_sampler_clone`` copies the grammar's progress (llama.cpp aborts the process
    on a sampler that cannot be cloned)."""
    model, ctx = lm
    params = SamplingParams(preset="greedy", temperature=0.0, grammar=GRAMMAR)
    chain = build_chain(params, model)
    clone = None
    try:
        tokens, _ = generate(lm, chain)  # the grammar is now complete: only EOG is allowed
        clone = llama_cpp.llama_sampler_clone(chain)
        assert clone
        assert llama_cpp.llama_sampler_name(clone) == b"chain"
        token = llama_cpp.llama_sampler_sample(clone, ctx.ptr, -1)
        assert model.is_eog(token), text_of(model, tokens)
    finally:
        llama_cpp.llama_sampler_free(chain)
        if clone is not None:
            llama_cpp.llama_sampler_free(clone)


def test_a_dead_end_marks_the_sampler_and_is_logged_instead_of_throwing(
        lm: tuple[LoadedModel, Context], caplog: pytest.LogCaptureFixture) -> None:
    """In-process, so a regression would abort this very test run: llama.cpp throws from
    inside accept when the grammar allows nothing (no token's text starts a NUL)."""
    model, ctx = lm
    ctx.clear()
    prompt = model.tokenize(PROMPT, add_special=True)
    arr = (llama_cpp.llama_token * len(prompt))(*prompt)
    assert ctx.decode(llama_cpp.llama_batch_get_one(arr, len(prompt))) == 0
    chain = build_chain(SamplingParams(temperature=0.0, grammar='root ::= "\\x00"'), model)
    try:
        assert not grammar_dead(chain)
        with caplog.at_level("WARNING", logger="hearth.engine"):
            llama_cpp.llama_sampler_sample(chain, ctx.ptr, -1)
        assert grammar_dead(chain)
    finally:
        llama_cpp.llama_sampler_free(chain)
    assert any("grammar dead end" in r.getMessage() for r in caplog.records)
