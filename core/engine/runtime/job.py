"""One request inside the scheduler: where it is (waiting, prefill, decode), the sequence it
runs on, and how its events leave (a sink called on the scheduler's thread)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from core.engine.api import DoneEvent, Event, GenerationRequest, TextEvent, TokenLogprob
from core.engine.metrics import NS_PER_MS, RequestMetrics
from core.engine.runtime.context import Context
from core.engine.runtime.emit import TokenEmitter
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.prompt import PromptBuilder, PromptTokens
from core.engine.runtime.sequence import Sequence

State = Literal["waiting", "prefill", "decode", "done"]
Sink = Callable[[Event], None]


class SchedulerParts(Protocol):
    """What admission and beam search use of the scheduler (its collaborators and state),
    so they depend on this and the scheduler on them, never the other way round."""

    context: Context
    model: LoadedModel
    prompts: PromptBuilder
    slots: list[Sequence]
    running: list[Job]
    waiting: dict[str, deque[Job]]

    def fail(self, job: Job, kind: str, message: str) -> None: ...

    def chain_for(self, job: Job) -> Any: ...


@dataclass(eq=False)
class Job:
    """A request and its progress. ``done_prefix`` counts the prompt tokens whose cells the
    sequence holds; ``pending`` is the last sampled token (emitted, not yet evaluated);
    ``source``/``share`` name a sequence whose first ``share`` cells this job will copy once
    that sequence has evaluated them (a prefix another request is still prefilling)."""

    id: int
    request: GenerationRequest
    sink: Sink
    cancel: threading.Event
    prompt: PromptTokens
    reserved: int
    t_submit: int = field(default_factory=time.perf_counter_ns)
    state: State = "waiting"
    seq: Sequence | None = None
    emitter: TokenEmitter | None = None
    done_prefix: int = 0
    chunk: int = 0  # prompt tokens in the batch being decoded
    pending: int = -1
    source: Sequence | None = None
    share: int = 0
    source_target: list[int] = field(default_factory=list)
    alone: bool = True  # no other request ran beside it (llama.cpp's counters are its own)
    evaluated: int = 0  # tokens it put into decodes (its share of the work)
    share_ms: float = 0.0  # its share of decode wall time, by tokens evaluated
    t_prefill_start: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    speculation: object | None = None  # the speculator's per-request state, when used
    beam_group: object | None = None  # beam search state (core.engine.runtime.beams)
    extra_seqs: list[Sequence] = field(default_factory=list)  # a beam search's other beams

    @property
    def tokens(self) -> list[int]:
        return self.prompt.tokens

    def emit_text(self, text: str) -> None:
        """Send text (with the log-probabilities gathered since the last text)."""
        logprobs = None
        if self.request.logprobs is not None and self.logprobs:
            logprobs, self.logprobs = self.logprobs, []
        if text or logprobs:
            self.sink(TextEvent(text, 1, time.perf_counter_ns(), logprobs))

    def finish_metrics(self, now: int) -> None:
        seq = self.seq
        assert seq is not None
        m = seq.metrics
        m.t_start_ns, m.t_end_ns = self.t_submit, now
        m.total_ms = (now - self.t_submit) / NS_PER_MS
        m.prefill_ms = seq.prefill_ns / NS_PER_MS
        if seq.t_first:
            m.ttft_ms = (seq.t_first - self.t_submit) / NS_PER_MS
            m.decode_ms = (seq.t_last - seq.t_first) / NS_PER_MS
        m.evaluated_tokens = self.evaluated
        m.engine_share_ms = self.share_ms
        m.concurrent = not self.alone

    def cancelled_unstarted(self) -> DoneEvent:
        """The DoneEvent of a request cancelled before it got a sequence."""
        now = time.perf_counter_ns()
        m = RequestMetrics(prompt_tokens=len(self.tokens), t_start_ns=self.t_submit,
                           t_end_ns=now, total_ms=(now - self.t_submit) / NS_PER_MS,
                           queued_ms=(now - self.t_submit) / NS_PER_MS)
        return DoneEvent("cancelled", "", m, self.prompt.template)

    def done(self, finish: str, now: int) -> DoneEvent:
        seq = self.seq
        assert seq is not None
        self.finish_metrics(now)
        return DoneEvent(finish, seq.stream.text, seq.metrics,  # type: ignore[arg-type]
                         self.prompt.template, tokens=list(seq.generated))


def token_logprob(model: LoadedModel, row: np.ndarray, token: int, top: int) -> TokenLogprob:
    """The log-probability of ``token`` under ``row`` (raw logits) and the ``top`` best."""
    peak = float(row.max())
    lse = peak + float(np.log(np.exp(row - peak, dtype=np.float64).sum()))
    best: list[tuple[str, float]] = []
    if top > 0:
        idx = np.argpartition(row, -top)[-top:]
        idx = idx[np.argsort(row[idx])[::-1]]
        best = [(_text(model, int(i)), float(row[i]) - lse) for i in idx]
    piece = model.piece(token)
    return TokenLogprob(piece.decode("utf-8", "replace"), float(row[token]) - lse, best,
                        list(piece))


def _text(model: LoadedModel, token: int) -> str:
    return model.piece(token).decode("utf-8", "replace")
