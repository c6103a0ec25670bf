"""The engine: one model, one context, a scheduler over its sequences.

Per decoding token a step makes two native calls (``llama_decode`` of the batch, and
``llama_sampler_sample`` — or numpy's argmax over llama.cpp's own logits row for plain
greedy — at that token's position only) plus dictionary look-ups for the token's bytes; no
logits row is copied into Python. KV cells stay cached between requests together with the
tokens they hold (:class:`Sequence`), so a chat's next turn only evaluates what is new
after the longest shared prefix.

In-process use (tests, benchmarks, the speculative tools) calls :meth:`Engine.generate`,
which drives the scheduler from the calling thread until its request ends. The worker
process calls :meth:`submit` and :meth:`step` itself, so many requests run at once
(``EngineConfig.n_seq_max``). Cancellation: a request's flag may be set from any thread; the
scheduler checks it every step, and during a lone prefill llama.cpp's abort callback checks
it between graph nodes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import llama_cpp

from core.engine.api import DoneEvent, ErrorEvent, Event, GenerationRequest
from core.engine.config import EngineConfig
from core.engine.runtime.context import Context
from core.engine.runtime.job import Sink
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.prompt import PromptBuilder
from core.engine.runtime.resources import check_context_fits, default_threads
from core.engine.runtime.scheduler import Scheduler
from core.engine.runtime.sequence import Sequence
from core.errors import ContextTooLargeError, HearthError

if TYPE_CHECKING:
    from core.engine.speculative.speculator import Speculator


class Engine:
    """A loaded model ready to generate. ``generate`` is for one thread at a time; the
    cancel flags it is given may be set from any thread."""

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
                                   n_ubatch=config.n_ubatch, n_seq_max=config.n_seq_max,
                                   threads=threads, threads_batch=config.n_threads_batch)
        except BaseException:
            self.model.close()
            raise
        self.n_ctx = self.context.n_ctx
        self.prompts = PromptBuilder(self.model)
        self._cancel = threading.Event()
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
        self.scheduler = Scheduler(self.model, self.context, self.prompts,
                                   speculator=self.speculator, queue_limit=config.queue_limit)

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
    def sequence(self) -> Sequence:
        """Sequence 0: the one a lone request runs on (tests look at what it holds)."""
        return self.scheduler.slots[0]

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds for reuse (sequence 0)."""
        return len(self.sequence.tokens)

    def cancel(self) -> None:
        """Stop the running ``generate`` soon (thread-safe); it ends with 'cancelled'."""
        self._cancel.set()

    def reset(self) -> None:
        """Forget the KV cache (the next request evaluates its whole prompt)."""
        self.scheduler.reset()

    def submit(self, request: GenerationRequest, sink: Sink,
               cancel: threading.Event | None = None, request_id: int | None = None) -> int:
        return self.scheduler.submit(request, sink, cancel, request_id)

    def step(self) -> bool:
        return self.scheduler.step()

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        """Stream a request's events: TextEvents, then one DoneEvent or ErrorEvent.
        Errors are yielded, never raised, so every consumer sees the same stream.

        ``cancel``, when given, is this request's own flag: whoever holds it can stop the
        request even before it starts; without it the engine makes a fresh flag, which
        :meth:`cancel` sets."""
        self._cancel = flag = cancel if cancel is not None else threading.Event()
        events: deque[Event] = deque()
        try:
            self.scheduler.submit(request, events.append, flag)
        except HearthError as err:
            yield ErrorEvent(str(err), type(err).__name__)
            return
        finished = False
        try:
            while not finished:
                while events:
                    event = events.popleft()
                    finished = isinstance(event, DoneEvent | ErrorEvent)
                    yield event
                if not finished and not self.scheduler.step() and not events:
                    yield ErrorEvent("The engine stopped without finishing the request.",
                                     "EngineError")
                    return
        finally:
            if not finished:  # the consumer stopped reading: end the request cleanly
                flag.set()
                while not self.scheduler.idle:
                    self.scheduler.step()

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Free the scheduler, the draft, the context and the model (idempotent)."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.close()
            self.scheduler = None  # type: ignore[assignment]
        speculator = getattr(self, "speculator", None)
        if speculator is not None:
            speculator.close()
            self.speculator = None
        if getattr(self, "context", None) is not None:
            self.context.close()
        if getattr(self, "model", None) is not None:
            self.model.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
