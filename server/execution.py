"""Running a request's choices on a backend, off the event loop, cancellable.

Each choice runs on its own thread: it waits for an admission slot, iterates
``backend.generate(request)`` and hands every event to a sink. Cancelling (the client went
away, a batch was cancelled) sets one flag; the thread then closes the engine's iterator at
the next event, which is how an ``EngineBackend`` cancels a request (the local worker gets
a cancel command and stops decoding at its next token: milliseconds, not the whole reply).
:class:`Run` puts the events on an asyncio queue for the HTTP handlers; :func:`drive` is
the blocking core that the batch runner calls directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from core.engine.api import (
    DoneEvent,
    EngineBackend,
    ErrorEvent,
    Event,
    GenerationRequest,
    TextEvent,
    TokenLogprob,
)
from core.engine.metrics import RequestMetrics
from core.engine.push import submit
from core.errors import HearthError
from server.admission import Admission, Ticket

log = logging.getLogger("hearth.server")
Sink = Callable[[Event], None]
# Called on the choice's thread when the engine is done with it (whether or not anyone is
# still reading): the final event, when it came (perf_counter_ns), and the tokens its text
# events carried (all a cancelled request has to show when its final event is ours).
FinalHook = Callable[[DoneEvent | ErrorEvent, int, int], None]
CANCELLED = "Cancelled"


class CancelFlag(threading.Event):
    """A cancel flag that also runs callbacks the moment it is set, so a stream that can be
    cancelled by id (``EventStream.cancel``) stops at once, not at its next token."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_set(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            already = self.is_set()
        if already:
            callback()

    def set(self) -> None:
        super().set()
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()


def drive(backend: EngineBackend, request: GenerationRequest, cancel: CancelFlag,
          sink: Sink) -> DoneEvent | ErrorEvent:
    """Run one request with its events pushed into ``sink`` (from the engine's reader
    thread: core/engine/push.py) until its final event; setting ``cancel`` stops it there.
    Always ends with one final event in the sink, returned too."""
    try:
        submission = submit(backend, request, sink)
    except HearthError as err:  # a backend may refuse up front (QueueFullError)
        final: DoneEvent | ErrorEvent = ErrorEvent(str(err), type(err).__name__)
        sink(final)
        return final
    cancel.on_set(submission.cancel)  # the worker stops the request now
    try:
        return submission.run()
    except Exception as err:  # a backend that raises mid-stream still ends the stream
        log.exception("server: the backend failed mid-stream")
        final = ErrorEvent(f"The engine failed: {err}", type(err).__name__)
        sink(final)
        return final


def run_admitted(backend: EngineBackend, admission: Admission, ticket: Ticket,
                 request: GenerationRequest, cancel: CancelFlag, sink: Sink,
                 on_start: Callable[[], None] | None = None) -> DoneEvent | ErrorEvent:
    """Wait for the ticket's slot, run the request, give the slot back. ``on_start`` is
    called once the slot is held, just before the engine gets the request."""
    try:
        if not admission.wait(ticket, cancel):
            final = ErrorEvent("The request was cancelled while it waited.", CANCELLED)
            sink(final)
            return final
        if on_start is not None:
            on_start()
        return drive(backend, request, cancel, sink)
    finally:
        admission.release(ticket)


@dataclass
class ChoiceResult:
    """Everything one choice produced, gathered from its events."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    done: DoneEvent | None = None
    error: ErrorEvent | None = None
    t_end_ns: int = 0  # when the engine let go of it (perf_counter_ns), set by its thread

    @property
    def metrics(self) -> RequestMetrics | None:
        return self.done.metrics if self.done is not None else None

    def add(self, event: Event) -> None:
        if isinstance(event, TextEvent):
            self.text += event.text
            if event.logprobs:
                self.logprobs.extend(event.logprobs)
        elif isinstance(event, DoneEvent):
            self.done = event
            self.text = event.text or self.text
        elif isinstance(event, ErrorEvent):
            self.error = event


class LoopPost:
    """Hands calls from the choice threads to the event loop, waking it once per burst.

    Every scheduler step the worker sends all running requests' tokens in one message, so C
    choice threads get an event within microseconds of each other; one
    ``call_soon_threadsafe`` each would wake the loop up to C times per step. On 2 cores
    every wake-up of this process is CPU taken from the engine's threads, so the calls queue
    here and only the first of a burst wakes the loop, which runs them all in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopPost:
        with _POSTS_LOCK:
            post = _POSTS.get(loop)
            if post is None:
                post = _POSTS[loop] = cls(loop)
            return post

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the loop (raises RuntimeError once the loop is closed)."""
        with self._lock:
            first = not self._pending
            self._pending.append((fn, args))
        if first:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for fn, args in pending:
            try:
                fn(*args)
            except Exception:  # one bad call must not drop the others' events
                log.exception("server: a call handed to the event loop failed")


_POSTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPost] = \
    weakref.WeakKeyDictionary()
_POSTS_LOCK = threading.Lock()


class Run:
    """One API request's choices in flight. Create with :meth:`start` (which may raise
    ``QueueFull`` before anything runs); read with :meth:`next` or :meth:`collect`."""

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cancel_flag = CancelFlag()
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.results = [ChoiceResult(i) for i in range(n)]
        self.open = n  # choices without their final event yet
        self._post = LoopPost.of(loop)
        self.on_final: FinalHook | None = None
        self._unsettled = n  # choice threads still finishing (recording their results)
        self._settled = asyncio.Event()

    @classmethod
    def start(cls, backend: EngineBackend, admission: Admission,
              requests: list[GenerationRequest], on_final: FinalHook | None = None) -> Run:
        run = cls(len(requests), asyncio.get_running_loop())
        run.on_final = on_final
        tickets: list[Ticket] = []
        try:
            for request in requests:
                tickets.append(admission.enter(request.lane))
        except BaseException:
            for ticket in tickets:
                admission.release(ticket)
            raise
        for index, (request, ticket) in enumerate(zip(requests, tickets, strict=True)):
            threading.Thread(target=run._choice, name=f"server-choice-{index}", daemon=True,
                             args=(backend, admission, ticket, request, index)).start()
        return run

    def _choice(self, backend: EngineBackend, admission: Admission, ticket: Ticket,
                request: GenerationRequest, index: int) -> None:
        produced = 0

        def sink(event: Event) -> None:
            nonlocal produced
            if isinstance(event, TextEvent):
                produced += event.n_tokens
            with contextlib.suppress(RuntimeError):  # the loop is gone (server stopping)
                self._post.call(self.queue.put_nowait, (index, event))

        try:
            final = run_admitted(backend, admission, ticket, request, self.cancel_flag, sink)
            t_end = time.perf_counter_ns()
            self.results[index].t_end_ns = t_end
            if self.on_final is not None:
                try:
                    self.on_final(final, t_end, produced)
                except Exception:
                    log.exception("server: recording a finished request failed")
        except Exception as err:  # never leave a reader waiting for this choice
            log.exception("server: a request's thread failed")
            sink(ErrorEvent(f"The server failed running the request: {err}", "ServerError"))
        finally:
            with contextlib.suppress(RuntimeError):
                self._post.call(self._one_settled)

    def _one_settled(self) -> None:
        self._unsettled -= 1
        if self._unsettled <= 0:
            self._settled.set()

    async def settled(self) -> None:
        """Wait until every choice's thread has recorded its result (tokens, finish) —
        a moment after its final event: the request log line is then complete."""
        await self._settled.wait()

    def cancel(self) -> None:
        self.cancel_flag.set()

    @property
    def finished(self) -> bool:
        return self.open == 0

    async def next(self) -> tuple[int, Event]:
        """The next event of any choice (results are updated as it passes)."""
        index, event = await self.queue.get()
        result = self.results[index]
        result.add(event)
        if isinstance(event, DoneEvent | ErrorEvent):
            self.open -= 1
        return index, event

    async def collect(self) -> list[ChoiceResult]:
        while not self.finished:
            await self.next()
        await self.settled()
        return self.results


async def watch_disconnect(receive: Callable[[], object], run: Run) -> None:
    """Cancel ``run`` when the client disconnects (for handlers that have read the body
    and are not streaming yet). Cancel this task before handing ``receive`` to anyone."""
    while True:
        message = await receive()  # type: ignore[misc]
        if isinstance(message, dict) and message.get("type") == "http.disconnect":
            run.cancel()
            return
