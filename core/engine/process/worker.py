"""The worker process: owns the model and runs the engine, so llama.cpp's aborts and
segfaults end this process and never the app.

Two threads: a reader that takes commands off the pipe (and acts on ``cancel`` at once, even
mid-prefill), and the main thread that loads models and runs requests. The worker exits by
itself when the parent goes away (pipe closed, or re-parented), so a crashed GUI never
leaves a process holding RAM or VRAM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

import llama_cpp

from core.engine.api import LoadedModelInfo
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
from core.engine.runtime.session import Engine
from core.errors import HearthError, ModelFileError, UnsupportedModelError


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs for the worker. ``fail_gpu_load`` is a test hook at the process boundary: it
    makes any load that asks for GPU layers fail as a real one would — ``"oom"`` answers
    with an out-of-memory failure, ``"abort"`` kills the worker mid-load — so the parent's
    fallback chain can be tested on a machine without a GPU."""

    fail_gpu_load: str | None = None
    parent_poll_s: float = 0.5
    nice: int = 0  # >0 runs the engine below the caller's CPU priority


class _Worker:
    def __init__(self, conn: Connection, options: WorkerOptions) -> None:
        self.conn = conn
        self.options = options
        self.engine: Engine | None = None
        self.inbox: queue.Queue[Command] = queue.Queue()
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.running: tuple[int, threading.Event] | None = None
        self.cancelled: set[int] = set()

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

    def send(self, request_id: int, event: object) -> None:
        with self.send_lock:
            self.conn.send((request_id, event))

    # -- commands ----------------------------------------------------------------------
    def cancel(self, request_id: int) -> None:
        with self.lock:
            if self.running is not None and self.running[0] == request_id:
                self.running[1].set()
            else:
                self.cancelled.add(request_id)

    def serve(self) -> None:
        while True:
            command = self.inbox.get()
            if isinstance(command, LoadCommand):
                self.unload()
                self.load(command)
            elif isinstance(command, GenerateCommand):
                self.generate(command)
            elif isinstance(command, UnloadCommand):
                self.unload()
                self.send(0, UnloadedEvent())
            elif isinstance(command, ShutdownCommand):
                self.unload()
                self.send(0, UnloadedEvent())
                return

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def generate(self, command: GenerateCommand) -> None:
        from core.engine.api import ErrorEvent

        flag = threading.Event()
        with self.lock:
            self.running = (command.request_id, flag)
            if command.request_id in self.cancelled:
                self.cancelled.discard(command.request_id)
                flag.set()
        try:
            if self.engine is None:
                self.send(command.request_id, ErrorEvent("No model is loaded.", "EngineError"))
                return
            for event in self.engine.generate(command.request, flag):
                self.send(command.request_id, event)
        finally:
            with self.lock:
                self.running = None

    def load(self, command: LoadCommand) -> None:
        cfg = command.config
        t0 = time.perf_counter()
        layers, notes, device = self._placement(cfg.n_gpu_layers)
        hook = self.options.fail_gpu_load
        if layers != 0 and hook == "abort":
            os.abort()
        if layers != 0 and hook == "oom":
            self.send(0, LoadFailedEvent(
                "out of memory (cudaMalloc failed; injected by the test hook)",
                "GpuLoadError", True, _n_layer(cfg.model_path)))
            return
        try:
            engine = Engine(replace(cfg, n_gpu_layers=layers))
        except HearthError as err:
            file_problem = isinstance(err, ModelFileError | UnsupportedModelError)
            gpu_related = layers != 0 and not file_problem
            self.send(0, LoadFailedEvent(str(err), type(err).__name__, gpu_related,
                                         _n_layer(cfg.model_path) if gpu_related else 0))
            return
        self.engine = engine
        model = engine.model
        self.send(0, LoadedModelInfo(
            model_name=model.name, path=str(model.path), architecture=model.architecture,
            n_layer=model.n_layer, n_params=model.n_params, size_bytes=model.size_bytes,
            n_ctx=engine.n_ctx, n_threads=engine.n_threads, template=engine.template_name,
            gpu_layers_requested=cfg.n_gpu_layers,
            gpu_layers=model.n_layer if layers < 0 else min(layers, model.n_layer),
            device=device, load_ms=(time.perf_counter() - t0) * 1000, notes=notes,
            worker_pid=os.getpid()))

    def _placement(self, requested: int) -> tuple[int, list[str], str]:
        """The layer count to actually ask llama.cpp for, notes on why, and the device."""
        if requested == 0:
            return 0, [], "CPU"
        if self.options.fail_gpu_load:
            return requested, [], "GPU (test hook)"
        from core.planning.hardware import probe_llama_devices

        devices, offload = probe_llama_devices()
        gpus = [d for d in devices if d.type in ("gpu", "igpu")]
        if not offload:
            return 0, ["this llama.cpp build has no GPU support"], "CPU"
        if not gpus:
            return 0, ["no GPU found"], "CPU"
        return requested, [], gpus[0].description or gpus[0].name


def _n_layer(model_path: Path | None) -> int:
    """The model's layer count (``<arch>.block_count``) from a vocabulary-only load, which
    reads the metadata but no weights."""
    if model_path is None:
        return 0
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.n_gpu_layers = 0
    ptr = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
    if not ptr:
        return 0
    try:
        buf = ctypes.create_string_buffer(256)
        key = b"general.architecture"
        if llama_cpp.llama_model_meta_val_str(ptr, key, buf, len(buf)) < 0:
            return 0
        key = buf.value + b".block_count"
        if llama_cpp.llama_model_meta_val_str(ptr, key, buf, len(buf)) < 0:
            return 0
        return int(buf.value or 0)
    finally:
        llama_cpp.llama_model_free(ptr)


def worker_main(conn: Connection, options: WorkerOptions, parent_pid: int) -> None:
    """Entry point of the worker process (spawned, never forked from a Qt process)."""
    from core import llama_log
    from core.log import configure

    configure(worker=True)

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
