"""A request's sampling parameters as a llama.cpp sampler chain (sampling runs in C)."""

from __future__ import annotations

from typing import Any

import llama_cpp

from core.engine.runtime.grammar_sampler import grammar_last
from core.engine.runtime.model import LoadedModel
from core.engine.sampling import SamplingParams
from core.errors import ConfigError


def build_chain(params: SamplingParams, model: LoadedModel, *,
                grammar_first: bool = False) -> llama_cpp.llama_sampler_p:
    """A new sampler chain for ``params``; the caller frees it with ``llama_sampler_free``.

    Order as llama.cpp's common sampler: penalties, then truncation, temperature and the
    draw. A grammar is checked against the drawn token only, and masks every candidate
    only when it refuses that token (:mod:`core.engine.runtime.grammar_sampler`);
    ``grammar_first`` puts it in the chain before truncation instead, masking every
    candidate of every step (llama.cpp's ``grammar_first``; the reference the fast path
    is measured and tested against)."""
    grammar = None if params.grammar is None else _grammar(params.grammar, model)
    chain = _chain(params, model, grammar if grammar_first else None)
    if grammar is None or grammar_first:
        return chain
    return grammar_last(chain, grammar, greedy=params.is_greedy)


def _grammar(text: str, model: LoadedModel) -> Any:
    grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, text.encode(), b"root")
    if not grammar:
        raise ConfigError("The output grammar is not valid GBNF (llama.cpp refused it).")
    return grammar


def _chain(params: SamplingParams, model: LoadedModel, grammar: Any) -> Any:
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if params.penalized:
        penalties = llama_cpp.llama_sampler_init_penalties(
            model.n_vocab, params.repeat_last_n, params.repeat_penalty,
            params.frequency_penalty, params.presence_penalty)
        add(chain, penalties)
    if grammar is not None:
        add(chain, grammar)
    if params.is_greedy:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.preset == "top-k":
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    elif params.preset == "top-p":
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
        add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    elif params.preset == "min-p":
        add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    add(chain, llama_cpp.llama_sampler_init_dist(params.seed & 0xFFFFFFFF))
    return chain
