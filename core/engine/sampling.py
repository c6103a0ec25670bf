"""Decoding presets (the seed's strategies) turned into a llama.cpp sampler chain.

Sampling runs in C (``llama_sampler_sample``): no logits row is ever copied into Python.
(Plain greedy decoding skips the chain altogether: the engine takes numpy's argmax over a
view of llama.cpp's logits row. llama.cpp's "backend sampler", which runs the chain inside
the graph, measured 4% slower here than sampling on the CPU, so it is not used.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import llama_cpp

Preset = Literal["greedy", "top-k", "top-p", "min-p"]
PRESETS: tuple[Preset, ...] = ("greedy", "top-k", "top-p", "min-p")
DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per chain


@dataclass(frozen=True)
class SamplingParams:
    """A decoding strategy. ``greedy`` ignores temperature/top-k/top-p; the other presets
    sample from the temperature-scaled distribution after their truncation."""

    preset: Preset = "top-p"
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not 0 <= self.min_p <= 1:
            raise ValueError("min_p must be in [0, 1]")
        if self.repeat_penalty <= 0:
            raise ValueError("repeat_penalty must be > 0")

    @classmethod
    def greedy(cls, repeat_penalty: float = 1.0) -> SamplingParams:
        return cls(preset="greedy", temperature=0.0, repeat_penalty=repeat_penalty)

    @property
    def is_greedy(self) -> bool:
        return self.preset == "greedy" or self.temperature == 0.0


def build_chain(params: SamplingParams, n_vocab: int) -> llama_cpp.llama_sampler_p:
    """A new sampler chain for ``params``; the caller frees it with ``llama_sampler_free``."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if params.repeat_penalty != 1.0:
        penalties = llama_cpp.llama_sampler_init_penalties(
            n_vocab, params.repeat_last_n, params.repeat_penalty, 0.0, 0.0
        )
        add(chain, penalties)
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
