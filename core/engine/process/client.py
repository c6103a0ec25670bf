"""The parent's side of the worker process: the same events as the in-process engine, for
many consumers at once.

``EngineClient.generate(request)`` yields TextEvents then a DoneEvent or ErrorEvent, exactly
like :meth:`Engine.generate`, and may be called from several threads at once: a reader
thread takes the worker's batched messages off the pipe and routes each event to its
request's queue. Whatever happens to the worker, every open stream ends: if it dies
mid-stream each ends with an ErrorEvent carrying its partial text, and the next request
starts a fresh worker and reloads the model. Loading walks a fallback chain — the requested
GPU layers, then half of the layers, then the CPU — when a GPU load fails or kills the
worker, and reports each step in the ``LoadedModelInfo``'s notes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import numpy as np

from core.engine.api import (
    DoneEvent,
    ErrorEvent,
    Event,
    GenerationRequest,
    LoadedModelInfo,
    TextEvent,
)
from core.engine.config import EngineConfig
from core.engine.process.death import (
    WorkerDied,
    death_reason,
    died_mid_stream,
    error_of_kind,
    fewer_layers,
    not_loaded,
    stopped,
)
from core.engine.process.pushed import PushedRequest
from core.engine.process.wire import (
    CancelCommand,
    Command,
    EmbedCommand,
    EmbeddingsEvent,
    GenerateCommand,
    LoadCommand,
    LoadFailedEvent,
    ShutdownCommand,
    StatusEvent,
    UnloadCommand,
    WhenBusy,
)
from core.engine.process.worker import WorkerOptions, worker_main
from core.engine.push import Sink
from core.errors import HearthError

_DIED = object()  # pushed into every open queue when the worker goes away


class _Route(Protocol):
    def put(self, item: Any) -> None: ...


class EngineClient:
    """Runs the engine in a worker process. ``generate``, ``embed`` and ``cancel`` are
    thread-safe; ``load``/``unload``/``close`` serialize with each other. Use as a context
    manager or ``close()``."""

    def __init__(self, options: WorkerOptions | None = None) -> None:
        self.options = options or WorkerOptions()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._life = threading.RLock()  # start, load, unload, reap
        self._config: EngineConfig | None = None
        self.loaded: LoadedModelInfo | None = None
        self._ids = itertools.count(1)
        self._streams: dict[int, _Route] = {}  # a pulled stream's queue, or a PushedRequest
        self._streams_lock = threading.Lock()
        self._control: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._death = ""  # how the last worker ended
        self.running = 0  # the worker's last status: requests decoding or prefilling
        self.waiting = 0  # ... and waiting for a sequence or KV room

    # -- process -----------------------------------------------------------------------
    @property
    def worker_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def in_flight(self) -> int:
        """Requests this client has open (streams not yet ended)."""
        with self._streams_lock:
            return len(self._streams)

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork: the parent may be a Qt process
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(target=worker_main, name="hearth-engine",
                              args=(child_conn, self.options, os.getpid()), daemon=True)
        process.start()
        child_conn.close()
        self._process, self._conn, self._death = process, parent_conn, ""
        self._control = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(parent_conn, self._control),
                         name="engine-events", daemon=True).start()

    def _read(self, conn: Connection, control: queue.SimpleQueue[Any]) -> None:
        """Route the worker's messages until its pipe closes."""
        while True:
            try:
                messages = conn.recv()
            except (EOFError, OSError, ConnectionError):
                break
            for rid, event in messages:
                if rid == 0:
                    if isinstance(event, StatusEvent):
                        self.running, self.waiting = event.running, event.waiting
                    else:
                        control.put(event)
                    continue
                with self._streams_lock:
                    stream = self._streams.get(rid)
                if stream is not None:
                    stream.put(event)
        control.put(_DIED)
        with self._streams_lock:
            for stream in self._streams.values():
                stream.put(_DIED)

    def _reap(self) -> str:
        """Forget a dead (or hung) worker; returns why it ended (the same answer to every
        stream that saw it go)."""
        with self._life:
            reason = self._death or "it was not running"
            if self._process is not None:
                if self._process.is_alive():
                    self._process.kill()
                reason = self._death = death_reason(self._process)
                self._process.close()
            if self._conn is not None:
                self._conn.close()
            self._process = self._conn = None
            self.loaded = None
        return reason

    def _send(self, command: Command) -> None:
        conn = self._conn
        if conn is None:
            raise WorkerDied("The engine process is not running.")
        try:
            with self._send_lock:
                conn.send(command)
        except (OSError, ValueError) as err:
            raise WorkerDied(f"The engine process is not reachable ({err}).") from None

    def _answer(self) -> Any:
        """The next load/unload answer; raises WorkerDied when the worker went away."""
        answer = self._control.get()
        if answer is _DIED:
            reason = self._reap()
            raise WorkerDied(f"The engine process stopped ({reason}).", reason)
        return answer

    # -- loading -----------------------------------------------------------------------
    def load(self, config: EngineConfig, when_busy: WhenBusy = "wait") -> LoadedModelInfo:
        """Load a model (replacing any loaded one), falling back from GPU to CPU as needed.
        Raises :class:`HearthError` with the reason when no placement works."""
        from core.models.bundled import default_model_path

        if config.model_path is None:
            config = replace(config, model_path=default_model_path())
        notes: list[str] = []
        layers = config.n_gpu_layers
        with self._life:
            while True:
                attempt = replace(config, n_gpu_layers=layers)
                try:
                    if not self.alive:
                        self._reap()
                        self._start()
                    self._send(LoadCommand(attempt, when_busy))
                    answer = self._answer()
                except WorkerDied as died:
                    if layers == 0:
                        raise WorkerDied(f"The engine process crashed while loading the "
                                         f"model ({died.reason}).", died.reason) from None
                    notes.append(f"GPU load with {_layers_text(layers)} failed: the engine "
                                 f"process crashed ({died.reason})")
                    layers = fewer_layers(layers, 0)
                    continue
                if isinstance(answer, LoadedModelInfo):
                    answer.notes[:0] = notes
                    self._config, self.loaded = config, answer
                    return answer
                assert isinstance(answer, LoadFailedEvent), answer
                if not answer.gpu_related or layers == 0:
                    self.loaded = None
                    before = "".join(f"{note}; " for note in notes)
                    raise error_of_kind(answer.kind, f"{before}{answer.message}")
                notes.append(f"GPU load with {_layers_text(layers)} failed: {answer.message}")
                layers = fewer_layers(layers, answer.n_layer)

    def unload(self, when_busy: WhenBusy = "wait") -> None:
        """Free the model (the worker stays up for the next load)."""
        with self._life:
            if self.alive:
                self._send(UnloadCommand(when_busy))
                with contextlib.suppress(WorkerDied):
                    self._answer()
            self.loaded = self._config = None

    def _ensure_loaded(self) -> None:
        with self._life:
            if self.alive and self.loaded is not None:
                return
            if self._config is None:
                raise HearthError("No model is loaded.")
            self.load(self._config)  # a fresh worker after a crash

    # -- generation --------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> EventStream:
        """Stream a request through the worker; never raises for engine trouble. Closing
        the stream early cancels the request (a client that went away); so does
        ``stream.cancel()`` or ``cancel(stream.request_id)`` from any thread."""
        rid = next(self._ids)
        return EventStream(rid, self._events(request, rid), self.cancel)

    def _events(self, request: GenerationRequest, rid: int) -> Iterator[Event]:
        text: list[str] = []
        try:
            self._ensure_loaded()
        except HearthError as err:
            yield not_loaded(err)
            return
        stream: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._streams_lock:
            self._streams[rid] = stream
        finished = False
        try:
            self._send(GenerateCommand(rid, request))
            while not finished:
                event = stream.get()
                if event is _DIED:
                    yield stopped(self._reap(), "".join(text))
                    finished = True
                    return
                if isinstance(event, TextEvent):
                    text.append(event.text)
                finished = isinstance(event, DoneEvent | ErrorEvent)
                yield event
        except WorkerDied as died:
            finished = True
            yield died_mid_stream(str(died), "".join(text))
        finally:
            with self._streams_lock:
                self._streams.pop(rid, None)
            if not finished:
                with contextlib.suppress(WorkerDied):
                    self._send(CancelCommand(rid))

    def submit(self, request: GenerationRequest, sink: Sink) -> PushedRequest:
        """The request with its events pushed: ``sink`` is called on the client's reader
        thread (quick, never blocking); ``run()`` on the returned handle starts it and waits
        for its final event (core/engine/push.py)."""
        return PushedRequest(self, next(self._ids), request, sink, _DIED)

    def embed(self, texts: list[str], model_path: str | None = None,
              pooling: str | None = None) -> np.ndarray:
        """L2-normalized float32 embeddings of ``texts`` (one row each), computed in the
        worker with the loaded model's weights or ``model_path``'s."""
        self._ensure_loaded()
        rid = next(self._ids)
        stream: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._streams_lock:
            self._streams[rid] = stream
        try:
            self._send(EmbedCommand(rid, list(texts), model_path, pooling))
            answer = stream.get()
        finally:
            with self._streams_lock:
                self._streams.pop(rid, None)
        if answer is _DIED:
            reason = self._reap()
            raise WorkerDied(f"The engine process stopped while embedding ({reason}).", reason)
        if isinstance(answer, ErrorEvent):
            raise error_of_kind(answer.kind, answer.message)
        assert isinstance(answer, EmbeddingsEvent)
        return np.asarray(answer.vectors, dtype=np.float32)

    def cancel(self, request_id: int | None = None) -> None:
        """Stop one request (by id) or, with no id, every open one (thread-safe)."""
        with self._streams_lock:
            ids = [request_id] if request_id is not None else list(self._streams)
        for rid in ids:
            with contextlib.suppress(WorkerDied):
                self._send(CancelCommand(rid))

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (politely, then by force) and free everything."""
        with self._life:
            if self.alive:
                try:
                    self._send(ShutdownCommand())
                    self._process.join(timeout=5)  # type: ignore[union-attr]
                except (WorkerDied, OSError):
                    pass
            self._reap()
            self._config = None

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream(Iterator[Event]):
    """One request's events, with its id: iterate it, ``cancel()`` it from any thread,
    ``close()`` it to stop reading (which cancels it too)."""

    def __init__(self, request_id: int, events: Iterator[Event],
                 cancel: Callable[[int | None], None]) -> None:
        self.request_id = request_id
        self._events = events
        self._cancel = cancel

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def cancel(self) -> None:
        self._cancel(self.request_id)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


def _layers_text(layers: int) -> str:
    return "all layers" if layers < 0 else f"{layers} layers"
