"""HTTP to one OpenAI-compatible engine: timeouts, retries on 429/503, and a stream that
another thread can cut.

Two httpx clients per engine: one with keep-alive for short JSON calls (the model list),
one without for replies, so every reply has a connection of its own. That connection's
socket is caught as it opens (httpcore's ``trace`` extension), which is what makes cancel
immediate: closing an httpx response from another thread does not wake a reader blocked in
``recv`` (measured: it slept on until the server's next byte, 30 s later), shutting the
socket down does, within a millisecond, and the server sees the client leave and stops.

Retries: a 429 or 503 is retried up to ``RetryPolicy.retries`` times, waiting what the
server's ``Retry-After`` says (seconds or an HTTP date) or, without one, an exponential
backoff; a ``Retry-After`` longer than ``max_wait_s`` is reported at once instead of
sitting in a chat for minutes. Waits end early on cancel.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from core.engine.remote.errors import (
    EngineBusyError,
    RemoteEngineError,
    error_for_exception,
    error_for_status,
)

log = logging.getLogger("hearth.remote")

KeySource = Callable[[], str | None]
RETRY_STATUSES = (429, 503)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``read_s`` is the longest silence accepted: before the first token a
    server sends nothing while it queues and prefills, so it is generous."""

    connect_s: float = 10.0
    read_s: float = 300.0
    write_s: float = 30.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_s, read=self.read_s, write=self.write_s,
                             pool=self.connect_s)


@dataclass(frozen=True)
class RetryPolicy:
    """How 429/503 answers are retried (see the module docstring)."""

    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_wait_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return retry_after
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class StreamControl:
    """One reply's off switch: ``cancel()`` from any thread sets ``cancelled`` and shuts
    the reply's socket down (once it exists; a socket that opens later is shut at once)."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep the socket of the connection this reply opens."""
        if name != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._sock = sock
        if self.cancelled.is_set():
            self._shutdown()

    def cancel(self) -> None:
        self.cancelled.set()
        self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Connection:
    """The HTTP side of one engine at ``base_url``; ``key`` is called when a request needs
    the API key (so a keyring is read on the engine's thread, never the GUI's)."""

    def __init__(self, base_url: str, key: KeySource | None = None,
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._key = key or (lambda: None)
        self._json = httpx.Client(timeout=self.timeouts.httpx(), transport=transport)
        self._streams = httpx.Client(
            timeout=self.timeouts.httpx(), transport=transport,
            limits=httpx.Limits(max_keepalive_connections=0))

    def _headers(self) -> dict[str, str]:
        key = self._key()
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def get_json(self, path: str, control: StreamControl | None = None) -> Any:
        """GET ``base_url + path`` as JSON, with the retries; raises RemoteEngineError."""
        request = self._json.build_request("GET", self.base_url + path, headers=self._headers())
        response = self._send(self._json, request, control or StreamControl(), stream=False)
        if response is None:
            raise RemoteEngineError("Cancelled.")
        try:
            return response.json()
        except ValueError:
            raise RemoteEngineError(f"The engine at {self.base_url} answered {path} with "
                                    "something that is not JSON; is this an OpenAI-compatible "
                                    "address (ending in /v1)?", response.status_code) from None

    def open_stream(self, path: str, body: dict[str, Any], control: StreamControl,
                    model: str | None = None) -> httpx.Response | None:
        """POST ``body`` and return the streaming response once it answered 2xx (the caller
        closes it); None when cancelled first. Raises RemoteEngineError."""
        headers = {**self._headers(), "Accept": "text/event-stream"}
        request = self._streams.build_request(
            "POST", self.base_url + path, json=body, headers=headers,
            extensions={"trace": control.trace})
        return self._send(self._streams, request, control, stream=True, model=model)

    def _send(self, client: httpx.Client, request: httpx.Request, control: StreamControl,
              stream: bool, model: str | None = None) -> httpx.Response | None:
        policy = self.retry
        for attempt in range(policy.retries + 1):
            if control.cancelled.is_set():
                return None
            try:
                response = client.send(request, stream=stream)
            except httpx.HTTPError as err:
                if control.cancelled.is_set():
                    return None
                raise error_for_exception(self.base_url, err, mid_stream=False,
                                          read_timeout_s=self.timeouts.read_s) from None
            if response.is_success:
                return response
            status = response.status_code
            try:
                body = response.read()
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            if status not in RETRY_STATUSES:
                raise error_for_status(self.base_url, status, body, model)
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None and after > policy.max_wait_s:
                raise EngineBusyError(
                    f"The engine at {self.base_url} is busy ({status}) and asks to retry in "
                    f"{after:.0f} s; try again then.", status)
            if attempt == policy.retries:
                break
            wait = policy.delay(attempt, after)
            log.info("engine %s answered %d; retry %d of %d in %.2f s%s", self.base_url,
                     status, attempt + 1, policy.retries, wait,
                     " (its Retry-After)" if after is not None else "")
            if control.cancelled.wait(wait):
                return None
        raise error_for_status(self.base_url, status, body, model)

    def close(self) -> None:
        self._json.close()
        self._streams.close()
