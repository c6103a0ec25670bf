"""The engine: one model, one context, a token loop on llama.cpp's low-level API.

Per token the loop makes two native calls (``llama_decode`` of a one-token batch built once,
and ``llama_sampler_sample``, which samples in C from the last position's logits only) plus
dictionary look-ups for the token's bytes; no logits row ever reaches Python. The KV cache
is kept between requests together with the tokens it holds, so a chat's next turn only
evaluates what is new after the longest shared prefix.

Cancellation: ``cancel()`` may be called from any thread. The decode loop checks the flag
every token; during a prefill, llama.cpp's abort callback checks it between graph nodes
(installed only for the prefill: a Python callback per node would cost decode speed).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import llama_cpp
import numpy as np

from core.engine import llama_log
from core.engine.emit import TokenEmitter
from core.engine.kvcache import keep_prefix
from core.engine.metrics import NS_PER_MS, RequestMetrics
from core.engine.model import LoadedModel
from core.engine.prompt import PromptBuilder
from core.engine.protocol import DoneEvent, ErrorEvent, Event, GenerationRequest, TextEvent
from core.engine.resources import check_context_fits, default_threads
from core.engine.sampling import build_chain
from core.engine.textstream import TextStream
from core.errors import ContextTooLargeError, EngineError, HearthError, PromptTooLongError

if TYPE_CHECKING:
    from core.engine.speculative import Speculator

# A NULL callback: ctypes wants a CFUNCTYPE instance, and a NULL one makes ggml skip the call.
_NO_ABORT = llama_cpp.ggml_abort_callback()


@dataclass
class EngineConfig:
    """How to load a model. ``model_path=None`` means the bundled default model;
    ``n_threads=None`` means one per physical core; ``n_gpu_layers=-1`` means all layers."""

    model_path: Path | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = -1
    warmup: bool = True
    validate: bool = True  # run core.validate on the file first (off only in tests)
    # Speculative decoding (core.engine.speculative): "model" drafts with draft_model_path,
    # "twin" with the target's own Q4_K_M twin (made and cached on first use), "lookup" with
    # n-grams of the prompt and output; draft_max bounds the guesses per round.
    draft: Literal["model", "twin", "lookup"] | None = None
    draft_model_path: Path | None = None
    draft_max: int = 16


class Engine:
    """A loaded model ready to generate. Not thread-safe except :meth:`cancel`."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config = config or EngineConfig()
        if config.model_path is None:
            from core.defaults import default_model_path

            config.model_path = default_model_path()
        if config.n_ctx < 16:
            raise ContextTooLargeError(f"A context of {config.n_ctx} tokens is too small.")
        self.model = LoadedModel(Path(config.model_path), config.n_gpu_layers, config.validate)
        try:
            check_context_fits(self.model, config.n_ctx, config.n_gpu_layers)
            self._init_context()
        except BaseException:
            self.model.close()
            raise
        self.prompts = PromptBuilder(self.model)
        self._cached: list[int] = []  # tokens whose keys/values are in the KV cache
        self._cancel = threading.Event()
        self._prefilling = False
        self._abort_cb = llama_cpp.ggml_abort_callback(self._abort_requested)
        self._tok = (llama_cpp.llama_token * 1)()
        self._one = llama_cpp.llama_batch_get_one(self._tok, 1)
        self._batch = llama_cpp.llama_batch_init(config.n_batch, 0, 1)
        self._logits: np.ndarray | None = None
        self._logits_address: int | None = None
        self.speculator: Speculator | None = None
        if config.draft is not None:
            from core.engine.speculative import Speculator

            try:
                self.speculator = Speculator(self, config)
            except BaseException:
                self.close()
                raise

    def _init_context(self) -> None:
        cfg = self.config
        threads = cfg.n_threads or default_threads()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = cfg.n_ctx
        params.n_batch = cfg.n_batch
        params.n_ubatch = min(cfg.n_ubatch, cfg.n_batch)
        params.n_seq_max = 1
        params.n_threads = threads
        params.n_threads_batch = cfg.n_threads_batch or threads
        params.no_perf = False
        # Sliding-window layers keep only their window (llama.cpp's default keeps the whole
        # context: 6x the KV memory on Gemma 3); prefix reuse checks what is still cached.
        params.swa_full = False
        position = llama_log.mark()
        ctx = llama_cpp.llama_init_from_model(self.model.ptr, params)
        if not ctx:
            reason = "; ".join(llama_log.errors_since(position)[-2:]) or "no reason given"
            raise ContextTooLargeError(
                f"Could not create a {cfg.n_ctx}-token context for {self.model.path.name} "
                f"({reason}). Try a smaller context."
            )
        self.ctx = ctx
        self.n_ctx: int = llama_cpp.llama_n_ctx(ctx)
        self.n_threads = threads
        self._mem = llama_cpp.llama_get_memory(ctx)
        if cfg.warmup:
            self._warmup()

    def _warmup(self) -> None:
        """One throw-away decode with every weight touched, as llama.cpp's tools do: the
        first real request would otherwise pay for page faults and buffer set-up in its
        time to first token."""
        model = self.model
        tokens = [t for t in (model.bos, model.eos) if t >= 0] or [0]
        arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        llama_cpp.llama_set_warmup(self.ctx, True)
        try:
            llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(arr, len(tokens)))
            llama_cpp.llama_synchronize(self.ctx)
        finally:
            llama_cpp.llama_set_warmup(self.ctx, False)
            llama_cpp.llama_memory_clear(self._mem, True)
            llama_cpp.llama_perf_context_reset(self.ctx)

    # -- public ------------------------------------------------------------------------
    @property
    def template_name(self) -> str:
        return self.prompts.template.name

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds for reuse."""
        return len(self._cached)

    def cancel(self) -> None:
        """Stop the running request soon (thread-safe); it ends with finish 'cancelled'."""
        self._cancel.set()

    def reset(self) -> None:
        """Forget the KV cache (the next request evaluates its whole prompt)."""
        llama_cpp.llama_memory_clear(self._mem, True)
        self._cached = []

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        """Stream a request's events: TextEvents, then one DoneEvent or ErrorEvent.
        Errors are yielded, never raised, so every consumer sees the same stream.

        ``cancel``, when given, is this request's own flag: whoever holds it can stop the
        request even before it starts (the worker process relies on that); without it the
        engine makes a fresh flag, which :meth:`cancel` sets."""
        self._cancel = cancel if cancel is not None else threading.Event()
        state = _RunState(time.perf_counter_ns())
        try:
            yield from self._run(request, state)
        except HearthError as err:
            yield ErrorEvent(str(err), type(err).__name__, state.stream.text)

    # -- the loop ----------------------------------------------------------------------
    def _run(self, request: GenerationRequest, st: _RunState) -> Iterator[Event]:
        metrics = st.metrics
        llama_cpp.llama_perf_context_reset(self.ctx)
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
        st.stream = TextStream(request.stop)
        chain = build_chain(request.sampling, self.model.n_vocab)
        try:
            finish = yield from self._prefill_and_decode(request, tokens, chain, st)
        finally:
            llama_cpp.llama_sampler_free(chain)
        tail = st.stream.flush()
        if tail:
            yield TextEvent(tail, 0)
        self._finish_metrics(st)
        yield DoneEvent(finish, st.stream.text, metrics, prompt.template)

    def _prefill_and_decode(
        self, request: GenerationRequest, tokens: list[int], chain: object, st: _RunState
    ) -> Iterator[Event]:
        metrics = st.metrics
        n_past = self._reuse_prefix(tokens) if request.reuse_cache else self._clear_all()
        metrics.cached_tokens = n_past
        t0 = time.perf_counter_ns()
        if not self._prefill(tokens, n_past):
            return "cancelled"
        st.prefill_ns = time.perf_counter_ns() - t0
        metrics.prefill_tokens = len(tokens) - n_past
        if request.max_tokens == 0:
            return "length"
        if self.speculator is not None:
            return (yield from self.speculator.decode(request, chain, st))
        emitter = TokenEmitter(self.model, self.prompts.extra_stop_tokens, request, st,
                               len(tokens), self.n_ctx, self._cancel)
        accept = emitter.accept
        sample = llama_cpp.llama_sampler_sample
        # Plain greedy needs no candidate array: llama_sampler_sample fills all 262,144
        # entries before its argmax (~1% of a token here); numpy's argmax over a view of
        # llama.cpp's own logits row picks the same token (first maximum) without a copy.
        greedy = self._argmax if (request.sampling.is_greedy
                                  and request.sampling.repeat_penalty == 1.0) else None
        decode = llama_cpp.llama_decode
        ctx, one, tok_arr, cached = self.ctx, self._one, self._tok, self._cached
        while True:
            token = greedy() if greedy is not None else sample(chain, ctx, -1)
            text, finish = accept(token)
            if text:
                yield TextEvent(text)
            if finish is not None:
                return finish
            tok_arr[0] = token
            rc = decode(ctx, one)
            if rc != 0:
                raise EngineError(f"llama.cpp failed to decode (code {rc}).")
            cached.append(token)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix of ``tokens``; returns how many are reused."""
        return keep_prefix(self._mem, self._cached, tokens, self.model.n_swa) or \
            self._clear_all()

    def _argmax(self) -> int:
        """The most likely next token, read in place from the last logits row."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        if address != self._logits_address:  # llama.cpp reallocated its output buffer
            self._logits = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))
            self._logits_address = address
        return int(self._logits.argmax())

    def _clear_all(self) -> int:
        self.reset()
        return 0

    def _prefill(self, tokens: list[int], n_past: int) -> bool:
        """Evaluate ``tokens[n_past:]`` in n_batch chunks, logits for the last token only.
        Returns False if cancelled (the cache is then rolled back to ``n_past``)."""
        batch, n_batch = self._batch, self.config.n_batch
        llama_cpp.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            for start in range(n_past, len(tokens), n_batch):
                chunk = tokens[start : start + n_batch]
                last = start + len(chunk) == len(tokens)
                for i, tok in enumerate(chunk):
                    batch.token[i] = tok
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 0
                if last:
                    batch.logits[len(chunk) - 1] = 1
                batch.n_tokens = len(chunk)
                rc = llama_cpp.llama_decode(self.ctx, batch)
                if rc == 2 or self._cancel.is_set():
                    llama_cpp.llama_memory_seq_rm(self._mem, 0, n_past, -1)
                    del self._cached[n_past:]
                    return False
                if rc != 0:
                    self._clear_all()
                    raise EngineError(f"llama.cpp failed to evaluate the prompt (code {rc}).")
                self._cached.extend(chunk)
            return True
        finally:
            llama_cpp.llama_set_abort_callback(self.ctx, _NO_ABORT, None)

    def _abort_requested(self, _data: ctypes.c_void_p) -> bool:
        return self._cancel.is_set()

    def _finish_metrics(self, st: _RunState) -> None:
        m = st.metrics
        end = time.perf_counter_ns()
        m.t_start_ns, m.t_end_ns = st.t_start, end
        m.total_ms = (end - st.t_start) / NS_PER_MS
        m.prefill_ms = st.prefill_ns / NS_PER_MS
        if st.t_first:
            m.ttft_ms = (st.t_first - st.t_start) / NS_PER_MS
            m.decode_ms = (st.t_last - st.t_first) / NS_PER_MS
        perf = llama_cpp.llama_perf_context(self.ctx)
        m.llama_prefill_ms = perf.t_p_eval_ms
        m.llama_prefill_tokens = perf.n_p_eval
        m.llama_decode_ms = perf.t_eval_ms
        m.llama_decode_tokens = perf.n_eval

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Free the draft, the context, the batch and the model (idempotent)."""
        if getattr(self, "speculator", None) is not None:
            self.speculator.close()
            self.speculator = None
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None) is not None:
            self.model.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RunState:
    """What one request accumulates while it runs."""

    def __init__(self, t_start: int) -> None:
        self.t_start = t_start
        self.t_first = 0
        self.t_last = 0
        self.prefill_ns = 0
        self.metrics = RequestMetrics()
        self.stream = TextStream()
