"""A request's sampling parameters as a llama.cpp sampler chain (sampling runs in C)."""

from __future__ import annotations

import llama_cpp

from core.engine.runtime.model import LoadedModel
from core.engine.sampling import SamplingParams
from core.errors import ConfigError


def build_chain(params: SamplingParams, model: LoadedModel) -> llama_cpp.llama_sampler_p:
    """A new sampler chain for ``params``; the caller frees it with ``llama_sampler_free``.

    Order as llama.cpp's common sampler: penalties, then the grammar (which masks tokens
    that cannot continue it), then truncation, temperature and the draw."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if params.penalized:
        penalties = llama_cpp.llama_sampler_init_penalties(
            model.n_vocab, params.repeat_last_n, params.repeat_penalty,
            params.frequency_penalty, params.presence_penalty)
        add(chain, penalties)
    if params.grammar is not None:
        grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, params.grammar.encode(),
                                                       b"root")
        if not grammar:
            llama_cpp.llama_sampler_free(chain)
            raise ConfigError("The output grammar is not valid GBNF (llama.cpp refused it).")
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
