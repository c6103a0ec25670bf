"""An :class:`EngineBackend` over an OpenAI-compatible HTTP API (vLLM, llama-server, Ollama,
another Hearth): the window, the CLI and the router use it like the local worker.

Every figure is measured here, by the client, on the same ``perf_counter_ns`` clock as the
local engine: TTFT from the call to the first text chunk (queueing, network and the
server's prefill together: what the user waits), decode speed over the chunks that follow,
a latency per chunk. Token counts come from the server's ``usage``; a llama.cpp server's
own ``timings`` fill the ``llama_*`` fields as a cross-check. Power and energy are the
remote machine's and cannot be seen from here: nothing in the metrics pretends otherwise
(``LoadedModelInfo.source == "remote"`` tells the front ends to say "unknown").

Thread safety: ``generate`` may run in several threads at once, each on its own connection;
``cancel`` from any thread shuts the reply's socket (see ``transport``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from core.engine.api import (
    DoneEvent,
    ErrorEvent,
    Event,
    FinishReason,
    GenerationRequest,
    LoadedModelInfo,
    TextEvent,
)
from core.engine.metrics import NS_PER_MS, RequestMetrics
from core.engine.remote.catalog import RemoteModel, parse_models
from core.engine.remote.errors import (
    EngineRejectedError,
    RemoteEngineError,
    StreamDroppedError,
    error_for_exception,
)
from core.engine.remote.transport import (
    Connection,
    KeySource,
    RetryPolicy,
    StreamControl,
    Timeouts,
)
from core.engine.remote.wire import SSEDecoder, finish_reason, parse_chunk, request_body

if TYPE_CHECKING:
    from core.engine.config import EngineConfig

log = logging.getLogger("hearth.remote")

TEMPLATE = "the server's own"


class RemoteBackend:
    """One model on one remote engine. ``model=None`` takes the first model the engine
    lists at :meth:`load`; ``api_key`` is the key or a callable returning it (read when a
    request needs it). ``transport`` swaps httpx's network layer (tests, proxies)."""

    worker_pid: int | None = None  # nothing runs on this machine

    def __init__(self, base_url: str, model: str | None = None,
                 api_key: str | KeySource | None = None, *, timeouts: Timeouts | None = None,
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        from core.models.engines import normalize_base_url

        self.base_url = normalize_base_url(base_url)
        self.model = model
        key: KeySource = api_key if callable(api_key) else (lambda: api_key)
        self.conn = Connection(self.base_url, key, timeouts, retry, transport)
        self.loaded: LoadedModelInfo | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._running: dict[int, StreamControl] = {}
        self._closed = False

    # -- models --------------------------------------------------------------------------
    def models(self) -> list[RemoteModel]:
        """What the engine serves; raises RemoteEngineError (unreachable, key, not OpenAI),
        which is logged too: a dialog closes, the log keeps the reason."""
        try:
            return parse_models(self.conn.get_json("/models"), self.base_url)
        except RemoteEngineError as err:
            log.warning("remote %s: %s", self.base_url, err)
            raise

    def load(self, config: EngineConfig | None = None) -> LoadedModelInfo:
        """Check the engine answers and serves the model; nothing is loaded here (the server
        did that). ``config`` is accepted for the protocol: context, threads and offload are
        the server's own settings."""
        t0 = time.perf_counter()
        listed = self.models()
        if not listed:
            raise EngineRejectedError(f"The engine at {self.base_url} serves no model yet.")
        chosen = next((m for m in listed if m.id == self.model), None) if self.model \
            else listed[0]
        if chosen is None:
            names = ", ".join(m.id for m in listed[:8])
            err = EngineRejectedError(f"The engine at {self.base_url} has no model "
                                      f"“{self.model}”; it serves: {names}.")
            log.warning("%s", err)
            raise err
        self.model = chosen.id
        host = self.base_url.split("://", 1)[1].split("/", 1)[0]
        self.loaded = LoadedModelInfo(
            model_name=chosen.id, path=self.base_url, architecture="", n_layer=0,
            n_params=chosen.n_params or 0, size_bytes=chosen.size_bytes or 0,
            n_ctx=chosen.n_ctx or 0, n_threads=0, template=TEMPLATE, gpu_layers_requested=0,
            gpu_layers=0, device=f"{chosen.server} at {host}",
            load_ms=(time.perf_counter() - t0) * 1000, source="remote",
            backend=chosen.server)
        log.info("remote model %s on %s (%s)", chosen.id, self.base_url, chosen.server)
        return self.loaded

    def unload(self) -> None:
        self.cancel()
        self.loaded = None

    # -- generation ----------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        """Stream one request; errors are events (with the text so far), never raised."""
        t0 = time.perf_counter_ns()
        control = StreamControl()
        with self._lock:
            request_id = next(self._ids)
            self._running[request_id] = control
        texts: list[str] = []
        response: httpx.Response | None = None
        finished = False
        try:
            if self.loaded is None or self.model is None:
                yield ErrorEvent("No remote model is chosen.", "EngineError")
                return
            if request.beams > 1:
                yield ErrorEvent("Beam search runs only on local models; a remote engine "
                                 "streams one reply.", "ConfigError")
                return
            path, body = request_body(request, self.model)
            response = self.conn.open_stream(path, body, control, self.model)
            if response is None:
                yield self._done("cancelled", texts, RequestMetrics(t_start_ns=t0), t0)
            else:
                yield from self._read(response, request, control, texts, t0)
            finished = True
        except RemoteEngineError as err:
            log.warning("remote %s: %s", self.base_url, err)
            finished = True
            yield ErrorEvent(str(err), type(err).__name__, "".join(texts))
        finally:
            if not finished:  # the consumer stopped reading: the server must stop too
                control.cancel()
            if response is not None:
                response.close()
            with self._lock:
                self._running.pop(request_id, None)

    def _read(self, response: httpx.Response, request: GenerationRequest,
              control: StreamControl, texts: list[str], t0: int) -> Iterator[Event]:
        m = RequestMetrics(t_start_ns=t0)
        decoder = SSEDecoder()
        first = last = 0
        chunks = 0
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        raw_finish: str | None = None
        ended = False
        try:
            for line in _lines(response):
                data = decoder.feed(line)
                if data is None:
                    continue
                piece = parse_chunk(data)
                if piece is None:
                    ended = True
                    break
                if piece.error:
                    raise RemoteEngineError(f"The engine at {self.base_url} stopped with an "
                                            f"error: {piece.error}")
                now = time.perf_counter_ns()
                usage = piece.usage or usage
                timings = piece.timings or timings
                if piece.finish:
                    raw_finish, last = piece.finish, max(last, now)
                if piece.text:
                    n = len(piece.logprobs) if piece.logprobs else 1
                    m.token_latencies_ms.append((now - (last or t0)) / NS_PER_MS)
                    first, last = first or now, now
                    chunks += n
                    texts.append(piece.text)
                    yield TextEvent(piece.text, n, now, piece.logprobs)
                if control.cancelled.is_set():
                    break
        except httpx.HTTPError as err:
            if not control.cancelled.is_set():
                raise error_for_exception(self.base_url, err, mid_stream=bool(texts),
                                          read_timeout_s=self.conn.timeouts.read_s) from None
        if control.cancelled.is_set():
            reason: FinishReason = "cancelled"
        elif raw_finish is None and not ended:
            raise StreamDroppedError(f"The engine at {self.base_url} ended the reply without "
                                     "finishing it." + (" The reply so far is kept."
                                                        if texts else ""))
        else:
            reason = finish_reason(raw_finish, request)
        _fill(m, usage, timings, chunks, first, last, t0)
        yield self._done(reason, texts, m, t0)

    def _done(self, reason: FinishReason, texts: list[str], m: RequestMetrics,
              t0: int) -> DoneEvent:
        end = time.perf_counter_ns()
        m.t_end_ns, m.total_ms = end, (end - t0) / NS_PER_MS
        log.info("remote %s %s: %s, %d tokens, TTFT %.0f ms, %.1f tok/s", self.base_url,
                 self.model, reason, m.decode_tokens, m.ttft_ms, m.decode_tok_s)
        return DoneEvent(reason, "".join(texts), m, template=TEMPLATE)

    def cancel(self, request_id: int | None = None) -> None:
        """Stop one reply (or, with no id, every running one): its socket is shut, the
        server sees the client leave, and the reply ends with ``finish_reason`` cancelled."""
        with self._lock:
            controls = (list(self._running.values()) if request_id is None
                        else [c for i, c in self._running.items() if i == request_id])
        for control in controls:
            control.cancel()

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.cancel()
        self.conn.close()
        self.loaded = None

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lines(response: httpx.Response) -> Iterator[str]:
    """The answer's SSE lines; a server that ignores ``stream`` and sends one JSON body
    becomes one event (its whole reply as a single piece) and the end marker."""
    if "json" not in response.headers.get("content-type", ""):
        yield from response.iter_lines()
        return
    body = response.read().decode("utf-8", "replace")
    one_line = body.replace("\r", " ").replace("\n", " ")  # JSON strings escape newlines
    yield from (f"data: {one_line}", "", "data: [DONE]", "")


def _fill(m: RequestMetrics, usage: dict[str, Any], timings: dict[str, Any], chunks: int,
          first: int, last: int, t0: int) -> None:
    """The client's clocks and the server's counts into ``m``."""
    details = usage.get("prompt_tokens_details") or {}
    m.prompt_tokens = int(usage.get("prompt_tokens") or timings.get("prompt_n", 0)
                          + timings.get("cache_n", 0))
    m.cached_tokens = int(details.get("cached_tokens") or timings.get("cache_n") or 0)
    m.prefill_tokens = max(0, m.prompt_tokens - m.cached_tokens)
    m.decode_tokens = int(usage.get("completion_tokens") or chunks)
    if first:
        m.ttft_ms = m.prefill_ms = (first - t0) / NS_PER_MS
        m.decode_ms = (last - first) / NS_PER_MS
    if timings:
        m.llama_prefill_ms = float(timings.get("prompt_ms") or 0.0)
        m.llama_prefill_tokens = int(timings.get("prompt_n") or 0)
        m.llama_decode_ms = float(timings.get("predicted_ms") or 0.0)
        m.llama_decode_tokens = int(timings.get("predicted_n") or 0)
