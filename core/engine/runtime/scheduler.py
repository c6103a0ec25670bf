"""Continuous batching: many sequences share one context, one ``llama_decode`` per step.

Each step (the shape of llama-server's ``update_slots``):

1. admit waiting requests (interactive lane before bulk) into free sequences while their
   prompt + max tokens fit the KV budget next to the running ones; a request whose prompt
   shares a prefix with cells already cached — a finished chat turn, a system prompt another
   request is evaluating right now — copies those cells (``seq_cp``) instead of evaluating
   them again (:mod:`core.engine.runtime.admission`);
2. put one token of every decoding sequence into the batch, then prompt chunks of the
   prefilling ones up to a budget that keeps running streams' pace (:class:`PrefillBudget`);
3. decode once, with logits only at the positions that are sampled;
4. sample each of those positions with its request's own chain (greedy: numpy's argmax over
   llama.cpp's row), emit through the request's :class:`TokenEmitter`, finish what ended.

Finished and cancelled requests free their sequence at once; their cells stay cached
until the space is needed, least recently used first. A lone decoding request with a
speculator runs speculative rounds; once a second is admitted, it joins the plain batch.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import llama_cpp

from core.engine.api import ErrorEvent, GenerationRequest
from core.engine.metrics import NS_PER_MS
from core.engine.runtime import admission, beams
from core.engine.runtime.chain import build_chain
from core.engine.runtime.context import NO_ABORT, Batch, Context
from core.engine.runtime.emit import TokenEmitter
from core.engine.runtime.grammar_sampler import DEAD_END, grammar_dead
from core.engine.runtime.job import Job, Sink, token_logprob
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.prompt import PromptBuilder
from core.engine.runtime.sequence import Sequence
from core.errors import EngineError, HearthError, PromptTooLongError, QueueFullError

if TYPE_CHECKING:
    from core.engine.speculative.speculator import Speculator

QUEUE_LIMIT = 64
BURST_TOKENS = 2  # streams with fewer generated tokens count as arrivals of the same burst


class PrefillBudget:
    """How many prompt tokens a step may carry beside decoding streams: enough that the
    step costs at most ``factor`` decode-only steps. Both costs are medians of the recent
    steps (one slow step, another program taking the CPU, must not open the gate to a
    512-token chunk)."""

    def __init__(self, n_batch: int, factor: float = 2.0, window: int = 15) -> None:
        self.n_batch, self.factor = n_batch, factor
        self._decode: deque[float] = deque(maxlen=window)  # ms of a decode-only step
        self._token: deque[float] = deque(maxlen=window)  # ms per prompt token added

    def cap(self, n_decoding: int) -> int:
        if n_decoding == 0:
            return self.n_batch
        if not self._decode or not self._token:
            return 16
        room = (self.factor - 1.0) * statistics.median(self._decode) / statistics.median(
            self._token)
        return int(max(4, min(self.n_batch - n_decoding, room)))

    def observe(self, step_ms: float, n_decoding: int, n_prompt: int) -> None:
        if n_decoding and not n_prompt:
            self._decode.append(step_ms)
        elif n_prompt and n_decoding and self._decode:
            extra = step_ms - statistics.median(self._decode)
            self._token.append(max(extra, 0.01) / n_prompt)


class Scheduler:
    """Owns the sequences of ``context``; ``submit`` from the thread that calls ``step``
    (``cancel`` flags may be set from any thread)."""

    def __init__(self, model: LoadedModel, context: Context, prompts: PromptBuilder, *,
                 speculator: Speculator | None = None, queue_limit: int = QUEUE_LIMIT) -> None:
        self.model, self.context, self.prompts = model, context, prompts
        self.speculator = speculator
        self.queue_limit = queue_limit
        self.slots = [Sequence(context, i, model.n_swa) for i in range(context.n_seq_max)]
        self.waiting: dict[str, deque[Job]] = {"interactive": deque(), "bulk": deque()}
        self.running: list[Job] = []
        self.budget = PrefillBudget(context.n_batch)
        self._batch = Batch(context.n_batch)
        self._next_id = 1
        self._abort_job: Job | None = None
        self._abort_cb = llama_cpp.ggml_abort_callback(self._abort_requested)
        self.steps = 0
        self.prefill_evaluated = 0  # prompt tokens evaluated, all requests (tests, bench)

    # -- requests ----------------------------------------------------------------------
    def submit(self, request: GenerationRequest, sink: Sink,
               cancel: threading.Event | None = None, request_id: int | None = None) -> int:
        """Queue a request; its events go to ``sink``; returns its id. A request that can
        never run (its prompt fills the context, a bad template) gets its ErrorEvent at
        once; a full queue raises :class:`QueueFullError`."""
        if sum(len(q) for q in self.waiting.values()) >= self.queue_limit:
            raise QueueFullError(
                f"{self.queue_limit} requests are already waiting; try again shortly.",
                retry_after_s=self._retry_after())
        if request_id is None:
            request_id, self._next_id = self._next_id, self._next_id + 1
        cancel = cancel or threading.Event()
        try:
            prompt = self.prompts.build(request)
            n = len(prompt.tokens)
            if n >= self.context.n_ctx:
                raise PromptTooLongError(
                    f"The prompt is {n} tokens but the context holds {self.context.n_ctx}; "
                    "shorten it or load the model with a larger context.")
        except HearthError as err:
            sink(ErrorEvent(str(err), type(err).__name__, ""))
            return request_id
        reserved = min(n + max(request.max_tokens, 1), self.context.n_ctx) * request.beams
        job = Job(request_id, request, sink, cancel, prompt, min(reserved, self.context.n_ctx))
        self.waiting[request.lane].append(job)
        return request_id

    def _retry_after(self) -> float:
        running = max(1, len(self.running))
        return round(min(30.0, 1.0 + len(self.running) / running), 1)

    @property
    def idle(self) -> bool:
        return not self.running and not any(self.waiting.values())

    @property
    def queue_depth(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    def reset(self) -> None:
        """Forget every cached cell (no request may be running)."""
        self.context.clear()
        for seq in self.slots:
            seq.tokens = []

    # -- one step ----------------------------------------------------------------------
    def step(self) -> bool:
        """Admit, decode once, emit. Returns whether work remains."""
        self._drop_cancelled_waiting()
        admission.admit(self)
        if not self.running:
            return self.queue_depth > 0
        self.steps += 1
        lone = self.running[0] if len(self.running) == 1 else None
        if (lone is not None and lone.state == "decode" and self.speculator is not None
                and not self.queue_depth and lone.beam_group is None
                and lone.request.logprobs is None):
            self._speculative_round(lone)
        else:
            self._batched_step()
        self.running = [j for j in self.running if j.state != "done"]
        return not self.idle

    def _prefill_cap(self, decoding: list[Job], n_decoding: int) -> int:
        """Prompt tokens this step may carry: up to ``n_batch`` for a burst (every decoding
        stream has just its first token: no reply's pace to protect yet; a few tokens per step
        let the first finish before the last began), else the budget's share."""
        young = all(job.seq is not None and len(job.seq.tokens) - len(job.tokens) < BURST_TOKENS
                    for job in decoding)
        return self._batch.room if n_decoding and young else self.budget.cap(n_decoding)

    def _batched_step(self) -> None:
        batch = self._batch
        batch.clear()
        outputs: list[tuple[Job, int]] = []
        beam_rows: dict[Job, list[tuple[Any, int]]] = {}
        decoding = [j for j in self.running if j.state == "decode"]
        for job in decoding:
            if job.cancel.is_set():
                self._finish(job, "cancelled")
                continue
            assert job.seq is not None
            if job.beam_group is not None:
                beam_rows[job] = [(beam, batch.add(token, pos, beam.seq.seq_id, True))
                                  for beam, token, pos in beams.outputs(job)]
                continue
            outputs.append((job, batch.add(job.pending, len(job.seq.tokens), job.seq.seq_id,
                                           True)))
        n_decoding = batch.n
        room = min(batch.room, self._prefill_cap(decoding, n_decoding))
        prefilling: list[Job] = []
        # A prefix lender stops its chunk where a borrower's shared prefix ends, so the
        # borrower copies the cells before the lender's sliding window moves past them.
        stops: dict[int, int] = {}
        for job in self.running:
            if job.state == "prefill" and job.source is not None:
                sid = job.source.seq_id
                stops[sid] = min(stops.get(sid, job.share), job.share)
        for job in self.running:
            if job.state != "prefill":
                continue
            if job.cancel.is_set():
                self._finish(job, "cancelled")
                continue
            if not admission.ready(job) or room <= 0:
                continue
            assert job.seq is not None
            rest = job.tokens[job.done_prefix:]
            take = min(len(rest), room)
            stop = stops.get(job.seq.seq_id, 0)
            if stop > job.done_prefix:
                take = min(take, stop - job.done_prefix)
            last = take == len(rest)
            batch.add_run(rest[:take], job.done_prefix, job.seq.seq_id, last)
            job.chunk, room = take, room - take
            if not job.t_prefill_start:
                job.t_prefill_start = time.perf_counter_ns()
            prefilling.append(job)
            if last:
                outputs.append((job, batch.n - 1))
        if batch.n == 0:
            return
        only = prefilling[0] if len(prefilling) == 1 and not n_decoding else None
        t0 = time.perf_counter_ns()
        rc = self._decode(only)
        step_ms = (time.perf_counter_ns() - t0) / NS_PER_MS
        if rc != 0:
            self._decode_failed(rc, decoding, prefilling)
            return
        n_prompt = batch.n - n_decoding
        self.budget.observe(step_ms, n_decoding, n_prompt)
        self.prefill_evaluated += n_prompt
        for job in decoding:
            if job.state == "decode" and job.seq is not None and job not in beam_rows:
                job.seq.tokens.append(job.pending)
                self._charge(job, 1, step_ms, batch.n)
        for job, rows in beam_rows.items():
            self._charge(job, len(rows), step_ms, batch.n)
            beams.step(self, job, rows)
        for job in prefilling:
            assert job.seq is not None
            job.seq.tokens.extend(job.tokens[job.done_prefix:job.done_prefix + job.chunk])
            job.done_prefix += job.chunk
            self._charge(job, job.chunk, step_ms, batch.n)
            if job.done_prefix == len(job.tokens):
                self._prefilled(job)
        for job, index in outputs:
            if job.state == "decode":
                self._sample(job, index)

    def _decode(self, only: Job | None) -> int:
        """One ``llama_decode``; a lone prefill can be aborted mid-graph by its cancel."""
        if only is None:
            return self._decode_synced()
        self._abort_job = only
        self.context.set_abort(self._abort_cb)
        try:
            return self._decode_synced()
        finally:
            self.context.set_abort(NO_ABORT)
            self._abort_job = None

    def _decode_synced(self) -> int:
        """Decode and wait for the device: on a GPU ``llama_decode`` returns before the
        work is done, and the step's clock (prefill budget, metrics) must see all of it."""
        rc = self.context.decode(self._batch.ptr)
        llama_cpp.llama_synchronize(self.context.ptr)
        return rc

    def _abort_requested(self, _data: Any) -> bool:
        return self._abort_job is not None and self._abort_job.cancel.is_set()

    def _decode_failed(self, rc: int, decoding: list[Job], prefilling: list[Job]) -> None:
        """Roll the batch back (llama.cpp may have kept some of its cells); then an abort
        ends the cancelled prefill, a full cache evicts idle cells or turns the newest
        prompt away, anything else fails the requests in the batch."""
        for job in [*decoding, *prefilling]:
            if job.seq is not None:
                job.seq.truncate(len(job.seq.tokens))
                self.context.seq_rm(job.seq.seq_id, len(job.seq.tokens), -1)
        if rc == 2:
            for job in prefilling:
                if job.cancel.is_set():
                    self._finish(job, "cancelled")
            return
        if rc == 1 and admission.evict_idle(self, need=self._batch.n):
            return  # retried next step with the room made
        if rc == 1 and prefilling:
            newest = max(prefilling, key=lambda j: j.t_submit)
            self.fail(newest, "ContextFullError",
                       "The context is full with the requests already running; this one "
                       "was turned away. Try again when they finish, or load the model with "
                       "a larger context.")
            return
        for job in [*decoding, *prefilling]:
            self.fail(job, "EngineError", f"llama.cpp failed to decode (code {rc}).")

    def _charge(self, job: Job, n: int, step_ms: float, total: int) -> None:
        job.evaluated += n
        job.share_ms += step_ms * n / total

    # -- per request -------------------------------------------------------------------
    def _prefilled(self, job: Job) -> None:
        seq = job.seq
        assert seq is not None
        seq.prefill_ns = time.perf_counter_ns() - (job.t_prefill_start or job.t_submit)
        seq.metrics.prefill_tokens = len(job.tokens) - seq.metrics.cached_tokens
        seq.n_prompt = len(job.tokens)
        job.state = "decode"
        if job.request.max_tokens == 0:
            self._finish(job, "length")
            return
        job.emitter = TokenEmitter(self.model, self.prompts.extra_stop_tokens, seq,
                                   self.context.n_ctx)

    def _sample(self, job: Job, index: int) -> None:
        seq = job.seq
        assert seq is not None and job.emitter is not None
        if beams.uses_beams(job):
            beams.first_step(self, job, index, job.extra_seqs)
            return
        if job.request.sampling.plain_argmax:
            token = self.context.argmax(index)
        else:
            token = llama_cpp.llama_sampler_sample(seq.chain, self.context.ptr, index)
            if job.request.sampling.grammar is not None and grammar_dead(seq.chain):
                return self.fail(job, "GrammarError", DEAD_END)
        if job.request.logprobs is not None:
            job.logprobs.append(token_logprob(self.model, self.context.logits_row(index),
                                              token, job.request.logprobs))
        self.accept(job, token)

    def accept(self, job: Job, token: int) -> bool:
        """Emit one sampled token; returns False when the request ended with it."""
        assert job.emitter is not None
        text, finish = job.emitter.accept(token)
        if text:
            job.emit_text(text)
        if finish is not None:
            self._finish(job, finish)
            return False
        job.pending = token
        return True

    def _speculative_round(self, job: Job) -> None:
        assert self.speculator is not None and job.seq is not None
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return
        try:
            tokens = self.speculator.round(job)
        except EngineError as err:
            self.fail(job, type(err).__name__, str(err))
            return
        for token in tokens:
            if not self.accept(job, token):
                return

    def _finish(self, job: Job, finish: str) -> None:
        seq = job.seq
        if seq is None or job.state == "done":
            return
        for other in job.extra_seqs:
            other.end()
        if job.emitter is not None:  # cells past what plain decoding evaluates (guesses)
            seq.truncate(seq.n_prompt + job.emitter.n_gen - 1)
        if job.speculation is not None and self.speculator is not None:
            self.speculator.end(job)
        tail = seq.stream.flush()
        job.emit_text(tail)
        if job.alone and job.beam_group is None:
            admission.copy_llama_counters(self.context, seq.metrics)
        job.sink(job.done(finish, time.perf_counter_ns()))
        job.state = "done"
        seq.end()

    def fail(self, job: Job, kind: str, message: str) -> None:
        seq = job.seq
        partial = seq.stream.text if seq is not None else ""
        job.sink(ErrorEvent(message, kind, partial))
        job.state = "done"
        for other in job.extra_seqs:
            other.end()
        if seq is not None:
            seq.end()

    def _drop_cancelled_waiting(self) -> None:
        for lane in self.waiting.values():
            for job in [j for j in lane if j.cancel.is_set()]:
                lane.remove(job)
                job.state = "done"
                job.sink(job.cancelled_unstarted())

    def chain_for(self, job: Job) -> Any:
        return build_chain(job.request.sampling, self.model)

    def close(self) -> None:
        for job in self.running:
            if job.seq is not None:
                job.seq.end()
        self._batch.close()
