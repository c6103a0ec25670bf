"""The engine's request and event types: the one data path from a caller to the view.

These are plain, picklable dataclasses so the same objects travel unchanged from the
in-process engine, through the worker process's pipe, to the GUI or the CLI's ``--json``
output (``to_dict``). A request yields zero or more :class:`TextEvent`, then exactly one
:class:`DoneEvent` (normal end, stop string, length, cancel) or :class:`ErrorEvent`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from core.engine.metrics import RequestMetrics
from core.engine.sampling import SamplingParams

if TYPE_CHECKING:
    from core.engine.config import EngineConfig

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["eos", "stop", "length", "cancelled", "context"]
Lane = Literal["interactive", "bulk"]


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
    shared prefix; turn it off to measure a cold prefill (such a request's cells are dropped
    when the next request is admitted, instead of staying for prefix reuse).

    ``logprobs``: None = off; N >= 0 = each TextEvent carries its tokens' log-probabilities
    and the N most likely alternatives (OpenAI's ``top_logprobs``; at most 20). ``lane``:
    interactive requests (chat, API chat) are admitted before bulk ones (batch jobs).
    ``beams`` > 1 runs beam search over that many sequences (greedy, length-normalized
    scores); ``return_beams`` puts every hypothesis in the DoneEvent, best first.
    ``tools`` are OpenAI-style function definitions handed to the chat template (templates
    that know tools render them; others ignore them).
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
    logprobs: int | None = None
    lane: Lane = "interactive"
    beams: int = 1
    return_beams: bool = False
    tools: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.messages, self.prompt, self.prompt_tokens)]
        if sum(given) != 1:
            raise ValueError("a request needs exactly one of messages, prompt or prompt_tokens")
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ValueError("logprobs must be between 0 and 20")
        if not 1 <= self.beams <= 16:
            raise ValueError("beams must be between 1 and 16")


@dataclass
class TokenLogprob:
    """One generated token's log-probability under the model's own distribution at that
    position (the raw logits' log-softmax: before penalties, grammar, temperature and
    truncation) and the ``top`` most likely alternatives, as (text, log-probability)."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)


@dataclass
class TextEvent:
    """A piece of decoded text: always whole UTF-8 characters, never part of a stop string.
    ``t_ns`` is when the engine produced it (``perf_counter_ns``: CLOCK_MONOTONIC, the same
    clock in every process), so a view can measure how long the text took to reach it."""

    text: str
    n_tokens: int = 1
    t_ns: int = field(default_factory=time.perf_counter_ns)
    logprobs: list[TokenLogprob] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"event": "token", "text": self.text}


@dataclass
class DoneEvent:
    """The request ended; ``text`` is the full reply (what the TextEvents added up to)."""

    finish_reason: FinishReason
    text: str
    metrics: RequestMetrics
    template: str | None = None
    beams: list[tuple[str, float]] | None = None  # (text, score), best first, when asked
    tokens: list[int] = field(default_factory=list)  # the generated token ids, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "done",
            "finish_reason": self.finish_reason,
            "template": self.template,
            "text": self.text,
            "metrics": self.metrics.to_dict(),
            **({"beams": [{"text": t, "score": s} for t, s in self.beams]}
               if self.beams is not None else {}),
        }


@dataclass
class ErrorEvent:
    """The request failed; ``partial_text`` keeps whatever was produced before the failure."""

    message: str
    kind: str = "error"
    partial_text: str = ""
    retry_after_s: float = 0.0  # for a full queue: when trying again makes sense

    def to_dict(self) -> dict[str, Any]:
        return {"event": "error", **asdict(self)}


Event = TextEvent | DoneEvent | ErrorEvent


@dataclass
class LoadedModelInfo:
    """What a backend has loaded and where it runs, and why if not where asked.

    Backend-neutral: the local worker fills every field; a remote engine fills what its API
    tells (``source`` says which, ``backend`` names the engine), leaving counts at 0."""

    model_name: str
    path: str
    architecture: str
    n_layer: int
    n_params: int
    size_bytes: int
    n_ctx: int
    n_threads: int
    template: str
    gpu_layers_requested: int
    gpu_layers: int
    device: str
    load_ms: float
    notes: list[str] = field(default_factory=list)
    worker_pid: int = 0
    n_seq_max: int = 1  # sequences decoded together (parallel requests)
    source: str = "local"  # "local" (a worker on this machine) or "remote"
    backend: str = "llama.cpp"

    @property
    def placement(self) -> str:
        """Where the model runs, in a few words ("GPU 18/18 layers", "CPU", "remote: vLLM at
        gpu-box:8000")."""
        if self.source == "remote":
            return f"remote: {self.device}"
        if self.gpu_layers == 0:
            return "CPU"
        return f"{self.device} {min(self.gpu_layers, self.n_layer)}/{self.n_layer} layers"

    @property
    def fell_back(self) -> bool:
        """True when a GPU placement was tried and failed (the user should be told)."""
        return any("failed" in note for note in self.notes)

    @property
    def message(self) -> str:
        """What the user is told: where it runs, after what happened on the way."""
        return "; ".join([*self.notes, f"running on {self.placement}"])

    def to_dict(self) -> dict[str, Any]:
        return {"event": "loaded", **asdict(self), "message": self.message}


class EngineBackend(Protocol):
    """What every engine offers its front ends: the local worker (``EngineClient``), an
    engine pool, a remote OpenAI-compatible server. ``generate`` may be called from several
    threads at once; each call's iterator yields that request's events only, ending with
    one DoneEvent or ErrorEvent (errors are events, never exceptions). ``cancel`` may be
    called from any thread; with no id it stops every running request."""

    @property
    def loaded(self) -> LoadedModelInfo | None: ...

    def load(self, config: EngineConfig) -> LoadedModelInfo: ...

    def generate(self, request: GenerationRequest) -> Iterator[Event]: ...

    def cancel(self, request_id: int | None = None) -> None: ...

    def unload(self) -> None: ...

    def close(self) -> None: ...
