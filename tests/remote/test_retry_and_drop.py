"""503/429 retried as Retry-After says (a real HTTP proxy in front of llama-server), a
Retry-After too long to wait reported at once, and a connection that drops mid-reply (the
real server killed) ending in a clear error that keeps the partial text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email.utils import formatdate

import pytest

from core.engine import DoneEvent, ErrorEvent, GenerationRequest, TextEvent
from core.engine.remote import EngineBusyError, RemoteBackend, RetryPolicy
from core.engine.remote.transport import parse_retry_after
from core.engine.sampling import SamplingParams
from tests.remote.flaky_proxy import FlakyProxy
from tests.remote.servers import LlamaServer

REQUEST = GenerationRequest(prompt="The sea is", sampling=SamplingParams.greedy(),
                            max_tokens=8, ignore_eos=True)


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now=now) == pytest.approx(7)
    assert parse_retry_after(formatdate(now - 7, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.delay(i, None) for i in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(0, 1.5) == 1.5


def test_503_then_429_are_retried_as_retry_after_says(flaky_proxy: FlakyProxy) -> None:
    with RemoteBackend(flaky_proxy.url) as backend:
        backend.load()
        flaky_proxy.fail_next((503, "1"), (429, "2"))
        events = list(backend.generate(REQUEST))
    done = events[-1]
    assert isinstance(done, DoneEvent), done
    assert done.metrics.decode_tokens == 8
    (t503, s1), (t429, s2), (t_ok, s3) = flaky_proxy.arrivals
    assert (s1, s2, s3) == (503, 429, 200)
    # Waited what each answer asked (and not much more: no backoff added on top).
    assert 1.0 <= t429 - t503 < 1.4
    assert 2.0 <= t_ok - t429 < 2.4
    assert done.metrics.ttft_ms >= 3000  # the user's wait includes the retries


def test_without_retry_after_the_backoff_grows(flaky_proxy: FlakyProxy) -> None:
    policy = RetryPolicy(backoff_s=0.2, max_backoff_s=1.0)
    with RemoteBackend(flaky_proxy.url, retry=policy) as backend:
        backend.load()
        flaky_proxy.fail_next((503, None), (503, None))
        done = list(backend.generate(REQUEST))[-1]
    assert isinstance(done, DoneEvent)
    times = [t for t, _ in flaky_proxy.arrivals]
    assert 0.2 <= times[1] - times[0] < 0.5 and 0.4 <= times[2] - times[1] < 0.7


def test_a_long_retry_after_or_endless_busy_is_reported(flaky_proxy: FlakyProxy) -> None:
    with RemoteBackend(flaky_proxy.url, retry=RetryPolicy(retries=2, backoff_s=0.05)) as be:
        be.load()
        flaky_proxy.fail_next((503, "3600"))
        t0 = time.perf_counter()
        final = list(be.generate(REQUEST))[-1]
        assert time.perf_counter() - t0 < 1.0  # not an hour in a chat
        assert isinstance(final, ErrorEvent) and final.kind == EngineBusyError.__name__
        assert "asks to retry in 3600 s" in final.message
        flaky_proxy.fail_next((429, None), (429, None), (429, None))
        final = list(be.generate(REQUEST))[-1]
        assert isinstance(final, ErrorEvent)
        assert "busy (429: “server busy”) and stayed busy after the retries" in final.message
        assert len(flaky_proxy.arrivals) == 3  # the first try and two retries


def test_cancel_during_a_retry_wait_ends_at_once(flaky_proxy: FlakyProxy) -> None:
    with RemoteBackend(flaky_proxy.url) as backend:
        backend.load()
        flaky_proxy.fail_next((503, "30"))
        threading.Timer(0.3, backend.cancel).start()
        t0 = time.perf_counter()
        final = list(backend.generate(REQUEST))[-1]
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert time.perf_counter() - t0 < 1.5


def test_a_server_that_does_not_stream_still_answers(flaky_proxy: FlakyProxy) -> None:
    with RemoteBackend(flaky_proxy.url) as backend:
        backend.load()
        streamed = list(backend.generate(REQUEST))[-1]
        flaky_proxy.ignore_stream = True
        try:
            events = list(backend.generate(REQUEST))
        finally:
            flaky_proxy.ignore_stream = False
    assert isinstance(streamed, DoneEvent)
    text, done = events
    assert isinstance(text, TextEvent) and isinstance(done, DoneEvent)
    assert text.text == done.text == streamed.text  # greedy: the same reply, in one piece
    assert done.metrics.decode_tokens == 8 and done.finish_reason == "length"


def test_dropped_connection_keeps_the_partial_text(
        doomed_server: Callable[[], LlamaServer]) -> None:
    server = doomed_server()
    with RemoteBackend(server.url) as backend:
        backend.load()
        texts: list[str] = []
        final = None
        for event in backend.generate(GenerationRequest(
                prompt="Once upon a time", sampling=SamplingParams.greedy(), max_tokens=3000,
                ignore_eos=True)):
            if isinstance(event, TextEvent):
                texts.append(event.text)
                if len(texts) == 6:
                    server.kill()
            else:
                final = event
    assert isinstance(final, ErrorEvent), final
    assert final.partial_text == "".join(texts) and len(texts) >= 6
    assert final.message.startswith(f"The connection to the engine at {server.url} dropped "
                                    "in the middle of the reply")
    assert final.message.endswith("The reply so far is kept.")
