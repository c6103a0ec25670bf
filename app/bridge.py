"""Qt adapters over the core: the GUI thread never calls the engine, the network or the disk.

:class:`EngineBridge` drives any :class:`~core.engine.api.EngineBackend` (the local worker
process, a pool, a remote server: it is injected, and ``load`` may switch to another) from
its own thread; the events are pushed to it on the engine's thread (core/engine/push.py) and
become queued signals, text coalesced so the view updates at most once per frame.
:class:`Background` runs any blocking call (history, library scan, hub search) on a worker
thread and delivers the result back on the GUI thread; a failure always reaches a handler,
the job's own or the instance's ``report`` (the window's status bar), and the log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.engine import DoneEvent, EngineConfig, ErrorEvent, GenerationRequest, TextEvent, push
from core.engine.api import EngineBackend, Event
from core.errors import HearthError

log = logging.getLogger("hearth.app")

# Text is coalesced into one view update per 16 ms at most (a 60 Hz screen's frame): more
# updates than the screen shows only cost the engine CPU, and a piece that arrives just after
# an update waits at most that long.
FRAME_MS = 16
# What one update costs the GUI thread (the slots, and the layout, paint and flush to the
# screen that follow) is measured; when it is more than this share of the time between
# updates, updates are spaced out, up to MAX_FRAME_MS (the text then comes in ~30 chunks a
# second, as LM Studio's or ChatGPT's do when the model is fast). On a small machine the GUI
# thread's CPU is taken from the engine's threads: at 1.5 ms an update (2 cores under Xvfb)
# and 70 tokens a second, one update per token cost the engine a tenth of its speed.
VIEW_BUDGET = 0.04
MAX_FRAME_MS = 33
HISTORY = 10_000  # measurements kept (a long session must not grow them without end)


class Background(QObject):
    """Runs callables off the GUI thread, in order (one worker per instance).

    ``report(exc)`` is where a failed job's error goes when the call gave no ``on_error``;
    every failure is also logged (``hearth.app``, with its traceback).
    Signals: ``_done(object, object, object)`` is internal (callback, result, error)."""

    _done = Signal(object, object, object)

    def __init__(self, name: str, parent: QObject | None = None, *,
                 report: Callable[[Exception], None]) -> None:
        super().__init__(parent)
        self.name = name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._closed = False
        self._report = report
        self._done.connect(self._deliver)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[Exception], None] | None = None) -> None:
        """Call ``fn()`` on the worker; then ``on_done(result)`` or ``on_error(exc)`` (else
        the instance's ``report``) on the GUI thread. After :meth:`shutdown` (the window is
        closing) nothing more is run."""
        if self._closed:
            log.warning("%s: a job was refused after shutdown: %r", self.name, fn)
            return

        def job() -> None:
            try:
                result = fn()
            except Exception as err:  # delivered to the GUI as a value, never raised there
                log.error("%s job failed: %s", self.name, err, exc_info=err)
                self._done.emit(on_error or self._report, None, err)
            else:
                self._done.emit(on_done, result, None)

        self._pool.submit(job)

    @Slot(object, object, object)
    def _deliver(self, callback: Callable[[Any], None] | None, result: Any,
                 error: Exception | None) -> None:
        if callback is not None:
            callback(error if error is not None else result)

    def persist(self, job: Callable[[], Any], on_done: Callable[[Any], None],
                on_error: Callable[[Exception], None]) -> None:
        """The ``persist`` a :class:`core.chat.session.ChatSession` takes."""
        self.run(job, on_done, on_error)

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

    def __init__(self, client: EngineBackend, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # ``client`` is the local engine; ``load(config, backend)`` may switch to another
        # (a remote server) and ``load(config)`` switches back to this one.
        self.client: EngineBackend = client
        self._local = client
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._stamps: list[int] = []  # when the engine produced each pending piece
        self._final: DoneEvent | ErrorEvent | None = None
        self._submission: push.Submission | None = None  # the running request's
        self._first_seen = False  # the running request's first event has come
        self._cancel_asked = False
        self._last_flush = 0.0
        self.frame_ms = float(FRAME_MS)  # the coalescing interval now (adapts to the view)
        self._view_ms = 0.0  # moving average of one update's cost on the GUI thread
        self._update_cpu: float | None = None  # GUI thread CPU time when an update began
        # The latest updates' whole costs and pieces' engine-to-view latencies (tests, bench).
        self.update_cpu_ms: deque[float] = deque(maxlen=HISTORY)
        self.delivery_ms: deque[float] = deque(maxlen=HISTORY)
        self._reply_stamps: list[int] = []  # engine timestamps of the current reply's pieces
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._on_timer)
        # While text comes faster than updates, the next update is timed from the last one
        # (the timer is "armed") and pieces arriving meanwhile wake nobody: one GUI wake-up
        # per update, not two (the first piece's signal, then the timer). Slower text is
        # shown as each piece wakes the GUI, with no timer: one wake-up per piece, not two
        # (a timer that would find nothing, then the piece). ``_timed`` says which regime
        # the last timer found.
        self._armed = False
        self._timed = False
        # A zero timer fires once the events an update posted (layout, paint, the flush to
        # the screen) have been handled: the end of that update's cost.
        self._painted = QTimer(self)
        self._painted.setSingleShot(True)
        self._painted.setInterval(0)
        self._painted.timeout.connect(self._on_painted)
        self._wake.connect(self._on_wake)
        self._loadDone.connect(self._on_load_done)
        self.busy = False
        self._worker_pid: int | None = None

    @property
    def worker_pid(self) -> int | None:
        """The process running the model, when the backend is local (telemetry follows it).

        Read on the engine thread after each load and at each request's start and end (a
        worker that died is replaced at the next request): asking the backend takes the
        pool's lock and resolves the model's path, which the panel must not do on the GUI
        thread at every tick."""
        return self._worker_pid

    def _read_worker_pid(self) -> None:
        """On the engine thread: remember the current model's worker process."""
        try:
            loaded = self.client.loaded
        except Exception as err:  # a closed backend has no worker
            log.warning("could not read which process runs the model: %s", err)
            loaded = None
        self._worker_pid = loaded.worker_pid or None if loaded is not None else None

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
                self._read_worker_pid()
                self._loadDone.emit(info, None)
            except HearthError as err:
                log.warning("model load failed: %s", err)
                if backend is not None and backend is not self.client:
                    backend.close()
                self._loadDone.emit(None, str(err))
            except Exception as err:  # an unexpected failure is still a message, not a crash
                log.error("model load failed unexpectedly", exc_info=err)
                if backend is not None and backend is not self.client:
                    backend.close()
                self._loadDone.emit(None, f"Loading failed unexpectedly: {err}")

        self._pool.submit(job)

    def generate(self, request: GenerationRequest) -> None:
        self._set_busy(True)
        with self._lock:
            self._pending.clear()
            self._stamps.clear()
            self._reply_stamps = []
            self._final = None
            self._cancel_asked = False
            self._armed = self._timed = False
        self._pool.submit(self._run, request)

    def reply_stamps(self, start: int = 0, stop: int | None = None) -> list[int]:
        """When the engine produced each piece of the current (or last) reply, the
        ``start``-th to the ``stop``-th (the panel asks only for what it has not seen)."""
        with self._lock:
            return self._reply_stamps[start:stop]

    def reply_pieces(self) -> int:
        """How many pieces the current (or last) reply has had so far."""
        with self._lock:
            return len(self._reply_stamps)

    def cancel(self) -> None:
        """Ask this window's running request to stop (returns at once; ``finished``
        follows). Only its own stream: the backend may be shared with the local server, whose
        requests must go on."""
        with self._lock:
            self._cancel_asked = True
            submission = self._submission
        if submission is not None:
            self._cancel_submission(submission)

    def shutdown(self) -> None:
        self.client.cancel()
        self._pool.shutdown(wait=True)
        self.client.close()
        if self._local is not None and self._local is not self.client:
            self._local.close()

    def _switch(self, backend: EngineBackend | None) -> None:
        """On the engine thread: make ``backend`` (None: the local worker) the engine."""
        if backend is None:
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
        """Start the request and wait for its end. Its events are pushed to :meth:`_take`
        on the thread that has them (the worker's reader: core/engine/push.py), so a piece
        wakes only the GUI thread, not this one too: on 2 cores every thread woken per
        token is taken from the engine's."""
        final: DoneEvent | ErrorEvent | None = None
        self._first_seen = False
        try:
            submission = push.submit(self.client, request, self._take)
            with self._lock:
                self._submission = submission
                cancel_now = self._cancel_asked
            if cancel_now:  # Stop pressed before the request reached the backend
                self._cancel_submission(submission)
            final = submission.run()
        except Exception as err:  # a backend must not raise, but one that does is reported
            log.error("the engine's stream failed", exc_info=err)
            final = ErrorEvent(f"The engine failed unexpectedly: {err}", type(err).__name__)
        if isinstance(final, ErrorEvent):
            log.warning("request failed (%s): %s", final.kind, final.message)
        self._read_worker_pid()
        with self._lock:
            self._submission = None
            self._final = final or ErrorEvent("The engine ended without a result.")
        self._wake.emit()

    def _take(self, event: Event) -> None:
        """The sink: on the engine's thread, quick, never blocking (the final event is what
        :meth:`_run` gets back)."""
        if not self._first_seen:  # the worker answering (a dead one was replaced for this
            self._first_seen = True  # request): which process it is, read off this thread
            threading.Thread(target=self._read_worker_pid, name="engine-pid",
                             daemon=True).start()
        if isinstance(event, TextEvent):
            with self._lock:
                wake = not self._pending and not self._armed
                self._pending.append(event.text)
                self._stamps.append(event.t_ns)
                self._reply_stamps.append(event.t_ns)
            if wake:
                self._wake.emit()

    def _cancel_submission(self, submission: push.Submission) -> None:
        """Cancel this window's request. A backend that only streams (a remote engine) is
        also told to stop at once: its stream has no cancel of its own, and that backend
        runs only this window's request."""
        submission.cancel()
        if not callable(getattr(self.client, "submit", None)):
            self.client.cancel()

    # -- GUI thread ----------------------------------------------------------------------
    @Slot()
    def _on_wake(self) -> None:
        since = (time.perf_counter() - self._last_flush) * 1000
        if since >= self.frame_ms:
            self._flush()
        elif not self._flush_timer.isActive():
            self._flush_timer.start(int(self.frame_ms - since) + 1)

    @Slot()
    def _on_timer(self) -> None:
        """An update is due: show what came, or stand down until the next piece wakes us
        (checked and cleared under the lock, so no piece is left waiting unseen)."""
        with self._lock:
            due = bool(self._pending) or self._final is not None
            self._timed = due
            if not due:
                self._armed = False
        if due:
            self._flush()

    @Slot()
    def _flush(self) -> None:
        with self._lock:
            text = "".join(self._pending)
            stamps = self._stamps[:]
            self._pending.clear()
            self._stamps.clear()
            final, self._final = self._final, None
            self._armed = bool(text) and final is None and self._timed
        self._last_flush = time.perf_counter()
        if self._armed:
            self._flush_timer.start(int(self.frame_ms) + 1)
        if text:
            # The reply's last update is not measured: finishing it renders the whole reply.
            self._update_cpu = time.thread_time() if final is None else None
            self.textReady.emit(text)  # the view's slots run here, on this thread
            now = time.perf_counter_ns()
            self.delivery_ms.extend((now - s) / 1e6 for s in stamps)
            self._painted.start()
        if final is not None:
            self._set_busy(False)
            self.finished.emit(final)

    @Slot()
    def _on_painted(self) -> None:
        if self._update_cpu is not None:
            cost = (time.thread_time() - self._update_cpu) * 1000
            self._update_cpu = None
            self.update_cpu_ms.append(cost)
            self._adapt(cost)

    def _adapt(self, cost_ms: float) -> None:
        """Space updates so that the view takes at most VIEW_BUDGET of the GUI thread's
        time (between FRAME_MS and MAX_FRAME_MS apart)."""
        self._view_ms = 0.8 * self._view_ms + 0.2 * cost_ms
        self.frame_ms = min(MAX_FRAME_MS, max(FRAME_MS, self._view_ms / VIEW_BUDGET))

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

