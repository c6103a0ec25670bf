"""``EngineClient.submit``: a request whose events the client's reader thread hands straight
to a sink (core/engine/push.py says why), with the same guarantees as ``generate``: one final
event, whatever happens to the worker, and a cancel that stops it there at once."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from core.engine.api import DoneEvent, ErrorEvent, GenerationRequest
from core.engine.metrics import RequestMetrics
from core.engine.process.death import WorkerDied, died_mid_stream, not_loaded, stopped
from core.engine.process.wire import Command, GenerateCommand
from core.engine.push import Final, FinalWait, Sink
from core.errors import HearthError


class Client(Protocol):
    """What a pushed request uses of :class:`~core.engine.process.client.EngineClient`."""

    _streams: dict[int, Any]
    _streams_lock: threading.Lock

    def _ensure_loaded(self) -> None: ...

    def _send(self, command: Command) -> None: ...

    def _reap(self) -> str: ...

    def cancel(self, request_id: int | None = None) -> None: ...


class PushedRequest:
    """Registered in the client's routing table like a pulled stream's queue: the reader
    calls :meth:`put` with each event, or with the client's death marker."""

    def __init__(self, client: Client, request_id: int, request: GenerationRequest,
                 sink: Sink, died: object) -> None:
        self._client = client
        self.request_id = request_id
        self._request = request
        self._wait = FinalWait(sink)
        self._died = died
        self._lock = threading.Lock()  # orders the Generate and Cancel commands
        self._state = "new"  # "sent", "cancelled"

    def put(self, item: Any) -> None:
        """From the reader thread. A death is answered off it: reaping the worker waits
        for the process, and the reader has every other stream to end."""
        if item is self._died:
            threading.Thread(target=self._end_dead, name="engine-died", daemon=True).start()
        else:
            self._wait.deliver(item)

    def _end_dead(self) -> None:
        self._wait.deliver(stopped(self._client._reap(), "".join(self._wait.text)))

    def cancel(self) -> None:
        with self._lock:
            sent = self._state == "sent"
            if self._state == "new":
                self._state = "cancelled"
        if sent and not self._wait.done:
            self._client.cancel(self.request_id)  # the worker answers with "cancelled"

    def run(self) -> Final:
        client = self._client
        if self._state == "cancelled":
            return self._end(DoneEvent("cancelled", "", RequestMetrics()))
        try:
            client._ensure_loaded()
        except HearthError as err:
            return self._end(not_loaded(err))
        with client._streams_lock:
            client._streams[self.request_id] = self
        try:
            with self._lock:
                if self._state == "cancelled":
                    return self._end(DoneEvent("cancelled", "", RequestMetrics()))
                client._send(GenerateCommand(self.request_id, self._request))
                self._state = "sent"
            return self._wait.wait()
        except WorkerDied as died:
            return self._end(died_mid_stream(str(died), "".join(self._wait.text)))
        finally:
            with client._streams_lock:
                client._streams.pop(self.request_id, None)

    def _end(self, final: DoneEvent | ErrorEvent) -> Final:
        self._wait.deliver(final)
        return self._wait.final or final
