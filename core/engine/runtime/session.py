"""The engine: one model, one context, a token loop on llama.cpp's low-level API.

Per token the loop makes two native calls (``llama_decode`` of a one-token batch, and
``llama_sampler_sample``, which samples in C from that position's logits only) plus
dictionary look-ups for the token's bytes; no logits row is copied into Python. The KV cache
is kept between requests together with the tokens it holds (:class:`Sequence`), so a chat's
next turn only evaluates what is new after the longest shared prefix.

Cancellation: ``cancel()`` may be called from any thread. The decode loop checks the flag
every token; during a prefill, llama.cpp's abort callback checks it between graph nodes
(installed only for the prefill: a Python callback per node would cost decode speed).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_cpp

from core.engine.api import DoneEvent, ErrorEvent, Event, GenerationRequest, TextEvent
from core.engine.config import EngineConfig
from core.engine.metrics import NS_PER_MS
from core.engine.runtime.chain import build_chain
from core.engine.runtime.context import NO_ABORT, Batch, Context
from core.engine.runtime.emit import TokenEmitter
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.prompt import PromptBuilder
from core.engine.runtime.resources import check_context_fits, default_threads
from core.engine.runtime.sequence import Sequence
from core.errors import ContextTooLargeError, EngineError, HearthError, PromptTooLongError

if TYPE_CHECKING:
    from core.engine.speculative.speculator import Speculator


class Engine:
    """A loaded model ready to generate. Not thread-safe except :meth:`cancel`."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config = config or EngineConfig()
        if config.model_path is None:
            from core.models.bundled import default_model_path

            config.model_path = default_model_path()
        if config.n_ctx < 16:
            raise ContextTooLargeError(f"A context of {config.n_ctx} tokens is too small.")
        self.model = LoadedModel(Path(config.model_path), config.n_gpu_layers, config.validate)
        self.n_threads = threads = config.n_threads or default_threads()
        try:
            check_context_fits(self.model, config.n_ctx, config.n_gpu_layers)
            self.context = Context(self.model, n_ctx=config.n_ctx, n_batch=config.n_batch,
                                   n_ubatch=config.n_ubatch, n_seq_max=1, threads=threads,
                                   threads_batch=config.n_threads_batch)
        except BaseException:
            self.model.close()
            raise
        self.n_ctx = self.context.n_ctx
        self.prompts = PromptBuilder(self.model)
        self.sequence = Sequence(self.context, 0, self.model.n_swa)
        self._cancel = threading.Event()
        self._abort_cb = llama_cpp.ggml_abort_callback(self._abort_requested)
        self._batch = Batch(config.n_batch)
        self._one = Batch(1)
        if config.warmup:
            self._warmup()
        self.speculator: Speculator | None = None
        if config.draft is not None:
            from core.engine.speculative.speculator import Speculator

            try:
                self.speculator = Speculator(self.model, self.context, self.prompts, config)
            except BaseException:
                self.close()
                raise

    def _warmup(self) -> None:
        """One throw-away decode with every weight touched, as llama.cpp's tools do: the
        first real request would otherwise pay for page faults and buffer set-up in its
        time to first token."""
        model, ctx = self.model, self.context
        tokens = [t for t in (model.bos, model.eos) if t >= 0] or [0]
        arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        llama_cpp.llama_set_warmup(ctx.ptr, True)
        try:
            llama_cpp.llama_decode(ctx.ptr, llama_cpp.llama_batch_get_one(arr, len(tokens)))
            llama_cpp.llama_synchronize(ctx.ptr)
        finally:
            llama_cpp.llama_set_warmup(ctx.ptr, False)
            ctx.clear()
            llama_cpp.llama_perf_context_reset(ctx.ptr)

    # -- public ------------------------------------------------------------------------
    @property
    def template_name(self) -> str:
        return self.prompts.template.name

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds for reuse."""
        return len(self.sequence.tokens)

    def cancel(self) -> None:
        """Stop the running request soon (thread-safe); it ends with finish 'cancelled'."""
        self._cancel.set()

    def reset(self) -> None:
        """Forget the KV cache (the next request evaluates its whole prompt)."""
        self.context.clear()
        self.sequence.tokens = []

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        """Stream a request's events: TextEvents, then one DoneEvent or ErrorEvent.
        Errors are yielded, never raised, so every consumer sees the same stream.

        ``cancel``, when given, is this request's own flag: whoever holds it can stop the
        request even before it starts (the worker process relies on that); without it the
        engine makes a fresh flag, which :meth:`cancel` sets."""
        self._cancel = cancel if cancel is not None else threading.Event()
        seq = self.sequence
        seq.begin(request, None, self._cancel, time.perf_counter_ns())
        try:
            yield from self._run(request, seq)
        except HearthError as err:
            yield ErrorEvent(str(err), type(err).__name__, seq.stream.text)
        finally:
            seq.end()

    # -- the loop ----------------------------------------------------------------------
    def _run(self, request: GenerationRequest, seq: Sequence) -> Iterator[Event]:
        metrics = seq.metrics
        llama_cpp.llama_perf_context_reset(self.context.ptr)
        prompt = self.prompts.build(request)
        tokens = prompt.tokens
        metrics.template_ms = prompt.template_ns / NS_PER_MS
        metrics.tokenize_ms = prompt.tokenize_ns / NS_PER_MS
        metrics.prompt_tokens = len(tokens)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError(
                f"The prompt is {len(tokens)} tokens but the context holds {self.n_ctx}; "
                "shorten it or load the model with a larger context."
            )
        seq.chain = build_chain(request.sampling, self.model)
        finish = yield from self._prefill_and_decode(request, tokens, seq)
        tail = seq.stream.flush()
        if tail:
            yield TextEvent(tail, 0)
        self._finish_metrics(seq)
        yield DoneEvent(finish, seq.stream.text, metrics, prompt.template)  # type: ignore[arg-type]

    def _prefill_and_decode(self, request: GenerationRequest, tokens: list[int],
                            seq: Sequence) -> Generator[Event, None, str]:
        metrics = seq.metrics
        n_past = seq.keep_prefix(tokens) if request.reuse_cache else self._cleared(seq)
        metrics.cached_tokens = n_past
        t0 = time.perf_counter_ns()
        if not self._prefill(seq, tokens, n_past):
            return "cancelled"
        seq.prefill_ns = time.perf_counter_ns() - t0
        seq.n_prompt = len(tokens)
        metrics.prefill_tokens = len(tokens) - n_past
        if request.max_tokens == 0:
            return "length"
        if self.speculator is not None:
            return (yield from self.speculator.decode(request, seq))
        emitter = TokenEmitter(self.model, self.prompts.extra_stop_tokens, seq, self.n_ctx)
        accept = emitter.accept
        sample = llama_cpp.llama_sampler_sample
        # Plain greedy needs no candidate array: llama_sampler_sample fills all 262,144
        # entries before its argmax (~1% of a token here); numpy's argmax over a view of
        # llama.cpp's own logits row picks the same token (first maximum) without a copy.
        greedy = self.context.argmax if request.sampling.plain_argmax else None
        decode = llama_cpp.llama_decode
        ctx, chain, cached = self.context.ptr, seq.chain, seq.tokens
        one = self._one
        b = one.ptr
        one.clear()
        one.add(0, 0, seq.seq_id, True)
        while True:
            token = greedy() if greedy is not None else sample(chain, ctx, -1)
            text, finish = accept(token)
            if text:
                yield TextEvent(text)
            if finish is not None:
                return finish
            b.token[0] = token
            b.pos[0] = len(cached)
            rc = decode(ctx, b)
            if rc != 0:
                raise EngineError(f"llama.cpp failed to decode (code {rc}).")
            cached.append(token)

    def _cleared(self, seq: Sequence) -> int:
        seq.clear()
        return 0

    def _prefill(self, seq: Sequence, tokens: list[int], n_past: int) -> bool:
        """Evaluate ``tokens[n_past:]`` in n_batch chunks, logits for the last token only.
        Returns False if cancelled (the cache is then rolled back to ``n_past``)."""
        batch, n_batch, ctx = self._batch, self.config.n_batch, self.context
        ctx.set_abort(self._abort_cb)
        try:
            for start in range(n_past, len(tokens), n_batch):
                chunk = tokens[start : start + n_batch]
                batch.clear()
                batch.add_run(chunk, start, seq.seq_id, start + len(chunk) == len(tokens))
                rc = ctx.decode(batch.ptr)
                if rc == 2 or seq.cancel.is_set():
                    seq.truncate(n_past)
                    return False
                if rc != 0:
                    seq.clear()
                    raise EngineError(f"llama.cpp failed to evaluate the prompt (code {rc}).")
                seq.tokens.extend(chunk)
            return True
        finally:
            ctx.set_abort(NO_ABORT)

    def _abort_requested(self, _data: ctypes.c_void_p) -> bool:
        return self._cancel.is_set()

    def _finish_metrics(self, seq: Sequence) -> None:
        m = seq.metrics
        end = time.perf_counter_ns()
        m.t_start_ns, m.t_end_ns = seq.t_start, end
        m.total_ms = (end - seq.t_start) / NS_PER_MS
        m.prefill_ms = seq.prefill_ns / NS_PER_MS
        if seq.t_first:
            m.ttft_ms = (seq.t_first - seq.t_start) / NS_PER_MS
            m.decode_ms = (seq.t_last - seq.t_first) / NS_PER_MS
        perf = llama_cpp.llama_perf_context(self.context.ptr)
        m.llama_prefill_ms = perf.t_p_eval_ms
        m.llama_prefill_tokens = perf.n_p_eval
        m.llama_decode_ms = perf.t_eval_ms
        m.llama_decode_tokens = perf.n_eval

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Free the draft, the context, the batches and the model (idempotent)."""
        speculator: Any = getattr(self, "speculator", None)
        if speculator is not None:
            speculator.close()
            self.speculator = None
        for name in ("_batch", "_one"):
            batch = getattr(self, name, None)
            if batch is not None:
                batch.close()
        if getattr(self, "context", None) is not None:
            self.context.close()
        if getattr(self, "model", None) is not None:
            self.model.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
