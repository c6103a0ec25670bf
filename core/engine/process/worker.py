"""The worker process: owns the model and runs the scheduler, so llama.cpp's aborts and
segfaults end this process and never the app.

Two threads. A reader takes commands off the pipe and acts on ``cancel`` at once (setting
the request's flag, which the scheduler checks every step and llama.cpp's abort callback
checks mid-prefill); everything else goes to the main thread's inbox. The main thread loops:
handle the commands that arrived, run one scheduler step (one ``llama_decode`` for every
running request), send the step's events as one message. A load or unload waits for the
running requests to finish (or cancels them, as the command asks) and holds back later
commands meanwhile, so they apply to the model they were sent for.

The worker exits by itself when the parent goes away (pipe closed, or re-parented), so a
crashed GUI never leaves a process holding RAM or VRAM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from core.engine.api import DoneEvent, ErrorEvent
from core.engine.process.loading import load_engine
from core.engine.process.wire import (
    CancelCommand,
    Command,
    EmbedCommand,
    EmbeddingsEvent,
    GenerateCommand,
    LoadCommand,
    ShutdownCommand,
    StatusEvent,
    UnloadCommand,
    UnloadedEvent,
)
from core.engine.runtime.session import Engine
from core.errors import HearthError, QueueFullError

log = logging.getLogger("hearth.engine")
FLUSH_S = 0.004  # events wait at most this long for company in one message


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs for the worker. ``fail_gpu_load`` is a test hook at the process boundary: it
    makes any load that asks for GPU layers fail as a real one would — ``"oom"`` answers
    with an out-of-memory failure, ``"abort"`` kills the worker mid-load — so the parent's
    fallback chain can be tested on a machine without a GPU."""

    fail_gpu_load: str | None = None
    parent_poll_s: float = 0.5
    nice: int = 0  # >0 runs the engine below the caller's CPU priority
    verbose: bool = False  # echo the log to stderr (hearth-cli --verbose)


class _Worker:
    def __init__(self, conn: Connection, options: WorkerOptions) -> None:
        self.conn = conn
        self.options = options
        self.engine: Engine | None = None
        self.inbox: queue.Queue[Command] = queue.Queue()
        self.lock = threading.Lock()  # flags and early cancels, shared with the reader
        self.send_lock = threading.Lock()
        self.flags: dict[int, threading.Event] = {}
        self.cancelled: set[int] = set()
        self.out: list[tuple[int, Any]] = []
        self.last_flush = time.monotonic()
        self.barrier: LoadCommand | UnloadCommand | ShutdownCommand | None = None
        self.embedders: dict[tuple[str | None, str | None], Any] = {}

    # -- threads -----------------------------------------------------------------------
    def read_commands(self) -> None:
        while True:
            try:
                command = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the parent is gone
            if isinstance(command, CancelCommand):
                self.cancel(command.request_id)
            else:
                self.inbox.put(command)

    def watch_parent(self, parent_pid: int) -> None:
        while True:
            time.sleep(self.options.parent_poll_s)
            if os.getppid() != parent_pid:
                os._exit(0)

    def send_now(self, messages: list[tuple[int, Any]]) -> None:
        with self.send_lock:
            self.conn.send(messages)

    def flush(self, force: bool = False) -> None:
        """Send what the last steps produced, with the worker's status."""
        if not self.out:
            return
        now = time.monotonic()
        final = any(isinstance(e, DoneEvent | ErrorEvent)
                    for _, e in self.out)
        if not (force or final or now - self.last_flush >= FLUSH_S):
            return
        engine = self.engine
        if engine is not None:
            sched = engine.scheduler
            self.out.append((0, StatusEvent(len(sched.running), sched.queue_depth)))
        messages, self.out = self.out, []
        self.last_flush = now
        self.send_now(messages)

    # -- commands ----------------------------------------------------------------------
    def cancel(self, request_id: int) -> None:
        with self.lock:
            flag = self.flags.get(request_id)
            if flag is not None:
                flag.set()
            else:
                self.cancelled.add(request_id)

    def serve(self) -> None:
        while True:
            busy = self.engine is not None and not self.engine.scheduler.idle
            if self.barrier is not None:
                if busy:
                    self.run_step()
                    continue
                barrier, self.barrier = self.barrier, None
                if not self.apply(barrier):
                    return
                continue
            try:
                command = self.inbox.get(block=not busy)
            except queue.Empty:
                command = None
            while command is not None and self.barrier is None:
                if not self.handle(command):
                    return
                try:
                    command = self.inbox.get_nowait()
                except queue.Empty:
                    command = None
            if self.engine is not None and not self.engine.scheduler.idle:
                self.run_step()
            self.flush(force=self.engine is None or self.engine.scheduler.idle)

    def handle(self, command: Command) -> bool:
        """Act on a command; False means shut down."""
        if isinstance(command, GenerateCommand):
            self.generate(command)
        elif isinstance(command, EmbedCommand):
            self.embed(command)
        elif isinstance(command, LoadCommand | UnloadCommand | ShutdownCommand):
            busy = self.engine is not None and not self.engine.scheduler.idle
            if busy and getattr(command, "when_busy", "cancel") == "cancel":
                self.cancel_all()
            if busy:
                self.barrier = command
                return True
            return self.apply(command)
        return True

    def apply(self, command: LoadCommand | UnloadCommand | ShutdownCommand) -> bool:
        self.flush(force=True)
        self.unload()
        if isinstance(command, LoadCommand):
            self.engine, answer = load_engine(command.config, self.options.fail_gpu_load)
            self.send_now([(0, answer)])
            return True
        self.send_now([(0, UnloadedEvent())])
        return not isinstance(command, ShutdownCommand)

    def cancel_all(self) -> None:
        with self.lock:
            for flag in self.flags.values():
                flag.set()

    def unload(self) -> None:
        for embedder in self.embedders.values():
            embedder.close()
        self.embedders.clear()
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def generate(self, command: GenerateCommand) -> None:
        rid = command.request_id
        if self.engine is None:
            self.out.append((rid, ErrorEvent("No model is loaded.", "EngineError")))
            return
        flag = threading.Event()
        with self.lock:
            self.flags[rid] = flag
            if rid in self.cancelled:
                self.cancelled.discard(rid)
                flag.set()

        def sink(event: Any) -> None:
            self.out.append((rid, event))
            if isinstance(event, DoneEvent | ErrorEvent):
                with self.lock:
                    self.flags.pop(rid, None)

        try:
            self.engine.submit(command.request, sink, flag, rid)
        except QueueFullError as err:
            sink(ErrorEvent(str(err), "QueueFullError", "", err.retry_after_s))

    def run_step(self) -> None:
        engine = self.engine
        assert engine is not None
        try:
            engine.step()
        except Exception as err:  # a bug must end the requests with a message, not hang
            log.exception("scheduler step failed")
            sched = engine.scheduler
            for job in list(sched.running):
                sched.fail(job, "EngineError", f"The engine failed: {err}")
            sched.running = []
        self.flush()

    def embed(self, command: EmbedCommand) -> None:
        from core.engine.runtime.embedding import Embedder

        rid = command.request_id
        try:
            key = (command.model_path, command.pooling)
            embedder = self.embedders.get(key)
            if embedder is None:
                if command.model_path is None and self.engine is None:
                    raise HearthError("No model is loaded to embed with.")
                if command.model_path is None:
                    assert self.engine is not None
                    embedder = Embedder(model=self.engine.model, pooling=command.pooling)
                else:
                    from pathlib import Path

                    embedder = Embedder(Path(command.model_path), pooling=command.pooling)
                self.embedders[key] = embedder
            vectors = embedder.embed(command.texts)
            self.out.append((rid, EmbeddingsEvent(vectors, embedder.name)))
        except HearthError as err:
            self.out.append((rid, ErrorEvent(str(err), type(err).__name__)))
        self.flush(force=True)


def worker_main(conn: Connection, options: WorkerOptions, parent_pid: int) -> None:
    """Entry point of the worker process (spawned, never forked from a Qt process)."""
    from core import llama_log
    from core.log import configure

    configure(worker=True, verbose=options.verbose)
    # ggml prints a backtrace on abort by attaching gdb: slow, noisy, and useless to users.
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    if options.nice:
        # Below the GUI: when the engine's threads fill every core, the window still gets
        # the CPU the moment it needs it (an idle GUI costs the engine nothing).
        with contextlib.suppress(OSError):
            os.nice(options.nice)
    llama_log.install()
    worker = _Worker(conn, options)
    threading.Thread(target=worker.read_commands, name="commands", daemon=True).start()
    threading.Thread(target=worker.watch_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    worker.serve()
