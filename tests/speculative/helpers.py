"""Shared by the speculation tests: run a greedy request and explain a divergence."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np

from core.engine import DoneEvent, Engine, GenerationRequest, SamplingParams
from tests.core.helpers import run

GREEDY = SamplingParams.greedy()


def greedy_tokens(engine: Engine, prompt: str, n: int) -> tuple[list[int], DoneEvent]:
    """Tokens of a cold greedy run: the prompt, then every generated token but the last
    (exactly what the KV cache holds afterwards), and the final event."""
    request = GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=n,
                                ignore_eos=True, reuse_cache=False)
    _, done = run(engine, request)
    return list(engine.sequence.tokens), done


def explain_divergence(engine: Engine, plain: list[int], spec: list[int]) -> str:
    """Where two token lists first differ and, from ``engine`` (a plain engine of the same
    target) evaluated one token at a time up to there, the gap between its top two logits:
    a gap near zero is a near-tie that batched kernels may round the other way."""
    i = next((j for j, (a, b) in enumerate(zip(plain, spec, strict=False)) if a != b),
             min(len(plain), len(spec)))
    engine.reset()
    batch_tok = (llama_cpp.llama_token * 1)()
    for tok in plain[:i]:
        batch_tok[0] = tok
        llama_cpp.llama_decode(engine.context.ptr, llama_cpp.llama_batch_get_one(batch_tok, 1))
    ptr = llama_cpp.llama_get_logits_ith(engine.context.ptr, -1)
    logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                   shape=(engine.model.n_vocab,))
    first, second = (int(t) for t in np.argsort(logits)[-2:][::-1])
    gap = float(logits[first] - logits[second])
    engine.reset()
    return (f"first difference at token {i}: plain {plain[i:i + 1]}, speculative "
            f"{spec[i:i + 1]}; plain logits there: top {first} ({logits[first]:.5f}), "
            f"second {second} ({logits[second]:.5f}), gap {gap:.5f}")
