"""Qt adapters over the core: the GUI thread never calls the engine, the network or the disk.

:class:`EngineBridge` owns an engine (any ``EngineBackend``: the local worker's
``EngineClient``, a remote engine) on its own thread and turns its event stream
into queued signals, coalescing text so the view updates at most once per frame.
:class:`Background` runs any blocking call (history, library scan, hub search) on a worker
thread and delivers the result back on the GUI thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.engine import DoneEvent, EngineConfig, ErrorEvent, GenerationRequest, TextEvent
from core.engine.api import EngineBackend
from core.engine.process.client import EngineClient
from core.engine.process.worker import WorkerOptions
from core.errors import HearthError

# Text is coalesced into one view update per 12 ms at most: a piece that arrives just after
# an update waits at most that long, so it is on screen within a 60 Hz frame (16.7 ms) of
# leaving the engine, and Qt still merges the repaints of one event-loop pass into one.
FRAME_MS = 12


class Background(QObject):
    """Runs callables off the GUI thread, in order (one worker per instance).

    Signals: ``_done(object, object, object)`` is internal (callback, result, error)."""

    _done = Signal(object, object, object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._closed = False
        self._done.connect(self._deliver)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[Exception], None] | None = None) -> None:
        """Call ``fn()`` on the worker; then ``on_done(result)`` or ``on_error(exc)`` on the
        GUI thread. After :meth:`shutdown` (the window is closing) nothing more is run."""
        if self._closed:
            return

        def job() -> None:
            try:
                result = fn()
            except Exception as err:  # delivered to the GUI as a value, never raised there
                self._done.emit(on_error, None, err)
            else:
                self._done.emit(on_done, result, None)

        self._pool.submit(job)

    @Slot(object, object, object)
    def _deliver(self, callback: Callable[[Any], None] | None, result: Any,
                 error: Exception | None) -> None:
        if error is not None:
            if callback is not None:
                callback(error)
            return
        if callback is not None:
            callback(result)

    def shutdown(self) -> None:
        """Finish what was queued (history writes must land), then refuse new work."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=False)


class EngineBridge(QObject):
    """The engine for the GUI.

    Signals (all delivered on the GUI thread):
    - ``loaded(LoadedModelInfo)`` / ``loadFailed(str)``: the outcome of :meth:`load`.
    - ``textReady(str)``: new reply text, coalesced to at most one emission per frame.
    - ``finished(DoneEvent | ErrorEvent)``: the request ended (after its last ``textReady``).
    - ``busyChanged(bool)``: a load or request started or ended.
    """

    loaded = Signal(object)
    loadFailed = Signal(str)
    textReady = Signal(str)
    finished = Signal(object)
    busyChanged = Signal(bool)
    _wake = Signal()
    _loadDone = Signal(object, object)

    def __init__(self, client: EngineBackend | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The engine runs niced below the window: on a machine whose cores it fills, the
        # GUI thread still gets a core the moment it wakes (measured: event-loop stalls
        # 55-75 ms -> 15-22 ms while streaming and downloading on 2 cores). The cost: other
        # busy programs slow the engine more than they would at equal priority.
        self.client: EngineBackend = client or EngineClient(WorkerOptions(nice=5))
        self._local = self.client if isinstance(self.client, EngineClient) else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._stamps: list[int] = []  # when the engine produced each pending piece
        self._final: DoneEvent | ErrorEvent | None = None
        self._last_flush = 0.0
        self.delivery_ms: list[float] = []  # engine-to-view latency per text piece
        self._reply_stamps: list[int] = []  # engine timestamps of the current reply's pieces
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush)
        self._wake.connect(self._on_wake)
        self._loadDone.connect(self._on_load_done)
        self.busy = False

    # -- commands (GUI thread) -----------------------------------------------------------
    def load(self, config: EngineConfig, backend: EngineBackend | None = None) -> None:
        """Load ``config`` in the local worker, or switch to ``backend`` (a remote engine)
        once it answers: the previous remote one is then closed, the local model unloaded
        (its memory freed; the worker stays for the way back). A backend that fails to load
        leaves the current engine as it was."""
        self._set_busy(True)

        def job() -> None:
            try:
                if backend is None:
                    self._switch(None)
                    info = self.client.load(config)
                else:
                    info = backend.load(config)
                    self._switch(backend)
                self._loadDone.emit(info, None)
            except Exception as err:  # an unexpected failure is still a message, not a crash
                if backend is not None and backend is not self.client:
                    backend.close()
                self._loadDone.emit(None, str(err) if isinstance(err, HearthError)
                                    else f"Loading failed unexpectedly: {err}")

        self._pool.submit(job)

    def generate(self, request: GenerationRequest) -> None:
        self._set_busy(True)
        with self._lock:
            self._pending.clear()
            self._stamps.clear()
            self._reply_stamps = []
            self._final = None
        self._pool.submit(self._run, request)

    def reply_stamps(self) -> list[int]:
        """When the engine produced each piece of the current (or last) reply."""
        with self._lock:
            return list(self._reply_stamps)

    def cancel(self) -> None:
        """Ask the running request to stop (returns at once; ``finished`` follows)."""
        self.client.cancel()

    def shutdown(self) -> None:
        self.client.cancel()
        self._pool.shutdown(wait=True)
        self.client.close()
        if self._local is not None and self._local is not self.client:
            self._local.close()

    def _switch(self, backend: EngineBackend | None) -> None:
        """On the engine thread: make ``backend`` (None: the local worker) the engine."""
        if backend is None:
            self._local = self._local or EngineClient(WorkerOptions(nice=5))
            backend = self._local
        if backend is self.client:
            return
        old, self.client = self.client, backend
        if old is self._local:
            with contextlib.suppress(HearthError):  # a dead worker has no model to free
                old.unload()
        else:
            old.close()

    # -- engine thread -------------------------------------------------------------------
    def _run(self, request: GenerationRequest) -> None:
        final: DoneEvent | ErrorEvent | None = None
        for event in self.client.generate(request):
            if isinstance(event, TextEvent):
                with self._lock:
                    wake = not self._pending
                    self._pending.append(event.text)
                    self._stamps.append(event.t_ns)
                    self._reply_stamps.append(event.t_ns)
                if wake:
                    self._wake.emit()
            elif isinstance(event, DoneEvent | ErrorEvent):
                final = event
        with self._lock:
            self._final = final or ErrorEvent("The engine ended without a result.")
        self._wake.emit()

    # -- GUI thread ----------------------------------------------------------------------
    @Slot()
    def _on_wake(self) -> None:
        since = (time.perf_counter() - self._last_flush) * 1000
        if since >= FRAME_MS:
            self._flush()
        elif not self._flush_timer.isActive():
            self._flush_timer.start(int(FRAME_MS - since) + 1)

    @Slot()
    def _flush(self) -> None:
        with self._lock:
            text = "".join(self._pending)
            stamps = self._stamps[:]
            self._pending.clear()
            self._stamps.clear()
            final, self._final = self._final, None
        self._last_flush = time.perf_counter()
        if text:
            self.textReady.emit(text)
            now = time.perf_counter_ns()
            self.delivery_ms.extend((now - s) / 1e6 for s in stamps)
        if final is not None:
            self._set_busy(False)
            self.finished.emit(final)

    @Slot(object, object)
    def _on_load_done(self, loaded: object, error: str | None) -> None:
        self._set_busy(False)
        if error is not None:
            self.loadFailed.emit(error)
        else:
            self.loaded.emit(loaded)

    def _set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)
