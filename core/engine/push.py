"""Events pushed to a callback instead of pulled from an iterator: for front ends that serve
many requests at once.

``backend.generate(request)`` hands a request's events to whoever iterates it: the worker's
reader thread puts each into that request's queue and the consumer thread wakes up for it.
With 16 streams that is 16 thread wake-ups per decode step on a 2-core machine where the
engine's two threads want both cores; measured at 16 streams through the worker, 10 pairs
against llama-batched-bench: 0.994× with a consumer thread per stream, 1.040× with the
events handled in the reader thread itself (bench/README.md).

So a backend may also offer ``submit(request, sink)``: the sink is called with each event
on the thread that has it (the worker's reader), in order, ending with one DoneEvent or
ErrorEvent, and must be quick and never block (put it on a queue, post it to a loop).
:func:`submit` gives every backend that interface; one without its own ``submit`` (a
remote server, a test's fake) is pulled on the thread that calls :meth:`Submission.run`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from core.engine.api import DoneEvent, EngineBackend, ErrorEvent, Event, GenerationRequest
from core.engine.metrics import RequestMetrics

log = logging.getLogger("hearth.engine")
Sink = Callable[[Event], None]
Final = DoneEvent | ErrorEvent


class Submission(Protocol):
    """One submitted request. ``cancel()`` works from any thread, before or during
    ``run()``; ``run()`` starts the request, blocks until its final event has gone to the
    sink (a wait, not a busy thread: the events arrive on the engine's own thread) and
    returns that event."""

    def cancel(self) -> None: ...

    def run(self) -> Final: ...


def submit(backend: EngineBackend | Any, request: GenerationRequest, sink: Sink) -> Submission:
    """``backend.submit(request, sink)`` where the backend pushes, else a pulled stand-in."""
    own = getattr(backend, "submit", None)
    if callable(own):
        submission: Submission = own(request, sink)
        return submission
    return PulledSubmission(lambda: backend.generate(request), sink)


def call_sink(sink: Sink, event: Event) -> None:
    """Hand ``event`` to a sink on an engine's thread: a failing sink is logged, and never
    stops the thread that routes every other request's events."""
    try:
        sink(event)
    except Exception:
        log.exception("engine: an event sink failed")


class PulledSubmission:
    """A pull-only backend's stream, iterated on the thread that calls :meth:`run`."""

    def __init__(self, open_stream: Callable[[], Iterator[Event]], sink: Sink) -> None:
        self._open = open_stream
        self._sink = sink
        self._cancelled = threading.Event()
        self._stream: Iterator[Event] | None = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            stream = self._stream
        stop = getattr(stream, "cancel", None)
        if callable(stop):
            stop()

    def run(self) -> Final:
        final: Final | None = None
        with self._lock:
            if not self._cancelled.is_set():
                self._stream = self._open()
            stream = self._stream
        try:
            for event in stream or ():
                self._sink(event)
                if isinstance(event, DoneEvent | ErrorEvent):
                    return event
                if self._cancelled.is_set() and not callable(getattr(stream, "cancel", None)):
                    break  # a stream that cannot be cancelled by id: stop reading it
        finally:
            with contextlib.suppress(Exception):
                getattr(stream, "close", lambda: None)()
        final = DoneEvent("cancelled", "", RequestMetrics())
        self._sink(final)
        return final


class FinalWait:
    """Waits for a pushed request's final event: ``deliver`` is the sink the engine's
    thread calls; it forwards to ``sink`` and wakes :meth:`wait` on the final event."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._done = threading.Event()
        self.final: Final | None = None
        self.text: list[str] = []  # the text so far (what a died request still shows)

    def deliver(self, event: Event) -> None:
        if self._done.is_set():
            return  # nothing after the final event (a late death notice, say)
        text = getattr(event, "text", None)
        if isinstance(event, DoneEvent | ErrorEvent):
            self.final = event
        elif isinstance(text, str):
            self.text.append(text)
        call_sink(self._sink, event)
        if self.final is not None:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self) -> Final:
        self._done.wait()
        assert self.final is not None
        return self.final
