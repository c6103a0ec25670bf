"""The parent's side of the worker process: the same events as the in-process engine.

``EngineClient.generate(request)`` yields TextEvents then a DoneEvent or ErrorEvent, exactly
like :meth:`Engine.generate`, whatever happens to the worker: if it dies mid-stream the
stream ends with an ErrorEvent carrying the partial text, and the next request starts a
fresh worker and reloads the model. Loading walks a fallback chain — the requested GPU
layers, then half of the layers, then the CPU — when a GPU load fails or kills the worker,
and reports each step in the ``LoadedModelInfo``'s notes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from core.engine.api import (
    DoneEvent,
    ErrorEvent,
    Event,
    GenerationRequest,
    LoadedModelInfo,
    TextEvent,
)
from core.engine.config import EngineConfig
from core.engine.process.wire import (
    CancelCommand,
    Command,
    GenerateCommand,
    LoadCommand,
    LoadFailedEvent,
    ShutdownCommand,
    UnloadCommand,
    UnloadedEvent,
)
from core.engine.process.worker import WorkerOptions, worker_main
from core.errors import EngineError, HearthError


class WorkerDied(EngineError):
    """The worker process ended unexpectedly; ``reason`` says how ("killed by SIGKILL")."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def _death_reason(process: BaseProcess) -> str:
    process.join(timeout=5)
    code = process.exitcode
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class EngineClient:
    """Runs the engine in a worker process. ``generate`` is for one consumer thread at a
    time; ``cancel`` may be called from any thread. Use as a context manager or ``close()``."""

    def __init__(self, options: WorkerOptions | None = None) -> None:
        self.options = options or WorkerOptions()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._config: EngineConfig | None = None
        self.loaded: LoadedModelInfo | None = None
        self._next_id = 1
        self._running_id: int | None = None

    # -- process -----------------------------------------------------------------------
    @property
    def worker_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork: the parent may be a Qt process
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(target=worker_main, name="hearth-engine",
                              args=(child_conn, self.options, os.getpid()), daemon=True)
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn

    def _reap(self) -> str:
        """Forget a dead (or hung) worker; returns why it ended."""
        reason = "it was not running"
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            reason = _death_reason(self._process)
            self._process.close()
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None
        self.loaded = None
        return reason

    def _send(self, command: Command) -> None:
        if self._conn is None:
            raise WorkerDied("The engine process is not running.")
        with self._send_lock:
            self._conn.send(command)

    def _recv(self) -> tuple[int, object]:
        assert self._conn is not None
        try:
            return self._conn.recv()
        except (EOFError, OSError, ConnectionError):
            reason = self._reap()
            raise WorkerDied(f"The engine process stopped ({reason}).", reason) from None

    # -- loading -----------------------------------------------------------------------
    def load(self, config: EngineConfig) -> LoadedModelInfo:
        """Load a model (replacing any loaded one), falling back from GPU to CPU as needed.
        Raises :class:`HearthError` with the reason when no placement works."""
        from core.models.bundled import default_model_path

        if config.model_path is None:
            config = replace(config, model_path=default_model_path())
        notes: list[str] = []
        layers = config.n_gpu_layers
        while True:
            attempt = replace(config, n_gpu_layers=layers)
            try:
                if not self.alive:
                    self._reap()
                    self._start()
                self._send(LoadCommand(attempt))
                _, answer = self._recv()
            except WorkerDied as died:
                if layers == 0:
                    raise WorkerDied(f"The engine process crashed while loading the model "
                                     f"({died.reason}).", died.reason) from None
                notes.append(f"GPU load with {_layers_text(layers)} failed: the engine "
                             f"process crashed ({died.reason})")
                layers = _fewer_layers(layers, 0)
                continue
            if isinstance(answer, LoadedModelInfo):
                answer.notes[:0] = notes
                self._config, self.loaded = config, answer
                return answer
            assert isinstance(answer, LoadFailedEvent), answer
            if not answer.gpu_related or layers == 0:
                raise _error_of_kind(answer.kind, answer.message)
            notes.append(f"GPU load with {_layers_text(layers)} failed: {answer.message}")
            layers = _fewer_layers(layers, answer.n_layer)

    def unload(self) -> None:
        """Free the model (the worker stays up for the next load)."""
        if self.alive:
            self._send(UnloadCommand())
            while not isinstance(self._recv()[1], UnloadedEvent):
                pass
        self.loaded = self._config = None

    # -- generation --------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        """Stream a request through the worker; never raises for engine trouble."""
        text: list[str] = []
        try:
            if not self.alive or self.loaded is None:
                if self._config is None:
                    yield ErrorEvent("No model is loaded.", "EngineError")
                    return
                self.load(self._config)  # a fresh worker after a crash
            request_id = self._next_id
            self._next_id += 1
            self._running_id = request_id
            self._send(GenerateCommand(request_id, request))
            finished = False
            try:
                while not finished:
                    rid, event = self._recv()
                    if rid != request_id:
                        continue  # a late answer to an abandoned request
                    if isinstance(event, TextEvent):
                        text.append(event.text)
                    finished = isinstance(event, DoneEvent | ErrorEvent)
                    yield event  # type: ignore[misc]
            finally:
                self._running_id = None
                if not finished and self.alive:
                    self._abandon(request_id)
        except WorkerDied as died:
            yield ErrorEvent(f"{died} The reply so far is kept; the next request restarts "
                             "the engine.", "WorkerDied", "".join(text))
        except HearthError as err:
            yield ErrorEvent(str(err), type(err).__name__, "".join(text))

    def _abandon(self, request_id: int) -> None:
        """The consumer stopped reading mid-stream: cancel and drain so the pipe stays in
        step with the worker."""
        try:
            self._send(CancelCommand(request_id))
            while True:
                rid, event = self._recv()
                if rid == request_id and isinstance(event, DoneEvent | ErrorEvent):
                    return
        except WorkerDied:
            pass  # the next request restarts it

    def cancel(self) -> None:
        """Stop the running request (thread-safe; a no-op when none runs)."""
        request_id = self._running_id
        if request_id is not None and self.alive:
            with contextlib.suppress(WorkerDied, OSError):
                self._send(CancelCommand(request_id))

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (politely, then by force) and free everything."""
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


def _layers_text(layers: int) -> str:
    return "all layers" if layers < 0 else f"{layers} layers"


def _fewer_layers(layers: int, n_layer: int) -> int:
    """Next step down the chain: all → half the model's layers → CPU."""
    if layers < 0 and n_layer > 1:
        return n_layer // 2
    if layers > 1 and n_layer and layers > n_layer // 2:
        return n_layer // 2
    return 0


def _error_of_kind(kind: str, message: str) -> HearthError:
    """Re-create the worker's error class in the parent (by name, from core.errors)."""
    from core import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, HearthError):
        return cls(message)
    return EngineError(message)
