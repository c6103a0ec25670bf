"""Decoding presets (the seed's strategies) as plain data that every front end can build.

:mod:`core.engine.runtime.chain` turns them into a llama.cpp sampler chain. Sampling runs
in C (``llama_sampler_sample``): no logits row is ever copied into Python. (Plain greedy
decoding skips the chain altogether: the engine takes numpy's argmax over a view of
llama.cpp's logits row. llama.cpp's "backend sampler", which runs the chain inside the graph,
measured 4% slower here than sampling on the CPU, so it is not used.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    # OpenAI's additive penalties over the last ``repeat_last_n`` tokens (0 = off).
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # A GBNF grammar the output must follow (structured output, tool calls); None = free.
    grammar: str | None = None

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
        if not -2.0 <= self.presence_penalty <= 2.0:
            raise ValueError("presence_penalty must be in [-2, 2]")
        if not -2.0 <= self.frequency_penalty <= 2.0:
            raise ValueError("frequency_penalty must be in [-2, 2]")

    @classmethod
    def greedy(cls, repeat_penalty: float = 1.0) -> SamplingParams:
        return cls(preset="greedy", temperature=0.0, repeat_penalty=repeat_penalty)

    @property
    def is_greedy(self) -> bool:
        return self.preset == "greedy" or self.temperature == 0.0

    @property
    def penalized(self) -> bool:
        return (self.repeat_penalty != 1.0 or self.presence_penalty != 0.0
                or self.frequency_penalty != 0.0)

    @property
    def plain_argmax(self) -> bool:
        """Greedy with nothing that reshapes the logits: the engine may take the argmax of
        llama.cpp's logits row directly instead of running the chain."""
        return self.is_greedy and not self.penalized and self.grammar is None
