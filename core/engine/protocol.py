"""The engine's request and event types: the one data path from a caller to the view.

These are plain, picklable dataclasses so the same objects travel unchanged from the
in-process engine, through the worker process's pipe, to the GUI or the CLI's ``--json``
output (``to_dict``). A request yields zero or more :class:`TextEvent`, then exactly one
:class:`DoneEvent` (normal end, stop string, length, cancel) or :class:`ErrorEvent`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.engine.metrics import RequestMetrics
from core.engine.sampling import SamplingParams

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["eos", "stop", "length", "cancelled", "context"]


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass
class GenerationRequest:
    """What to generate: either chat ``messages`` (rendered with the model's template) or a
    raw ``prompt`` (completion mode, no template), never both.

    ``prompt_tokens`` bypasses tokenization entirely (benchmarks feed exact token counts).
    ``ignore_eos`` keeps decoding through end-of-generation tokens (benchmarks need a fixed
    number of tokens). ``reuse_cache`` lets a prompt that extends the previous one skip the
    shared prefix; turn it off to measure a cold prefill.
    """

    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    prompt_tokens: list[int] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    reuse_cache: bool = True
    add_generation_prompt: bool = True

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.messages, self.prompt, self.prompt_tokens)]
        if sum(given) != 1:
            raise ValueError("a request needs exactly one of messages, prompt or prompt_tokens")
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")


@dataclass
class TextEvent:
    """A piece of decoded text: always whole UTF-8 characters, never part of a stop string.
    ``t_ns`` is when the engine produced it (``perf_counter_ns``: CLOCK_MONOTONIC, the same
    clock in every process), so a view can measure how long the text took to reach it."""

    text: str
    n_tokens: int = 1
    t_ns: int = field(default_factory=time.perf_counter_ns)

    def to_dict(self) -> dict[str, Any]:
        return {"event": "token", "text": self.text}


@dataclass
class DoneEvent:
    """The request ended; ``text`` is the full reply (what the TextEvents added up to)."""

    finish_reason: FinishReason
    text: str
    metrics: RequestMetrics
    template: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "done",
            "finish_reason": self.finish_reason,
            "template": self.template,
            "text": self.text,
            "metrics": self.metrics.to_dict(),
        }


@dataclass
class ErrorEvent:
    """The request failed; ``partial_text`` keeps whatever was produced before the failure."""

    message: str
    kind: str = "error"
    partial_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"event": "error", **asdict(self)}


Event = TextEvent | DoneEvent | ErrorEvent
