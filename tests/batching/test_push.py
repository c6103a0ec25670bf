"""Events pushed to a sink (core/engine/push.py): the worker's reader thread hands each event
to the request's sink, with the same guarantees as a pulled stream — the same text, one
final event, cancel by request, a dead worker ending every stream with its partial text."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import (
    DoneEvent,
    EngineConfig,
    ErrorEvent,
    Event,
    GenerationRequest,
    SamplingParams,
    TextEvent,
)
from core.engine.pool import EnginePool, MemoryBudget
from core.engine.process.client import EngineClient
from core.engine.push import PulledSubmission, submit

GREEDY = SamplingParams.greedy()


@pytest.fixture(scope="module")
def client(default_model: Path) -> Iterator[EngineClient]:
    with EngineClient() as c:
        c.load(EngineConfig(model_path=default_model, n_ctx=1024, n_seq_max=4, warmup=False))
        yield c


def _req(prompt: str, n: int) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=n, ignore_eos=True)


class Sink:
    """Records events and the threads they came on; ``then`` runs after the k-th text."""

    def __init__(self, then: tuple[int, object] | None = None) -> None:
        self.events: list[Event] = []
        self.threads: set[str] = set()
        self.then = then

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)
        texts = sum(isinstance(e, TextEvent) for e in self.events)
        if self.then is not None and texts == self.then[0]:
            self.then[1]()  # type: ignore[operator]

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextEvent))


def test_pushed_events_come_on_the_reader_thread_and_match_the_pulled_stream(
        client: EngineClient) -> None:
    *_, pulled = client.generate(_req("One, two, three,", 10))
    sinks = [Sink() for _ in range(3)]
    finals: dict[int, Event] = {}

    def run(i: int) -> None:
        finals[i] = client.submit(_req("One, two, three,", 10), sinks[i]).run()

    runs = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(timeout=120)
    assert isinstance(pulled, DoneEvent) and len(finals) == 3
    for i, sink in enumerate(sinks):
        final = finals[i]
        assert sink.events[-1] is final and isinstance(final, DoneEvent)
        assert sum(isinstance(e, DoneEvent | ErrorEvent) for e in sink.events) == 1
        assert sink.text == final.text and len(final.tokens) == 10
        assert sink.threads == {"engine-events"}  # no consumer thread woken per token
    assert all(f.text == pulled.text for f in finals.values() if isinstance(f, DoneEvent)), \
        "the same greedy request pushed gave other text than pulled"
    assert client.in_flight == 0


def test_cancel_from_the_sink_stops_that_request_alone(client: EngineClient) -> None:
    other = Sink()
    holder: list = []
    victim = Sink(then=(3, lambda: holder[0].cancel()))
    holder.append(client.submit(_req("Red, green,", 200), victim))
    neighbour = client.submit(_req("A, B, C,", 24), other)
    t = threading.Thread(target=neighbour.run)
    t.start()
    final = holder[0].run()
    t.join(timeout=120)
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert len(final.tokens) < 200
    done = other.events[-1]
    assert isinstance(done, DoneEvent) and done.metrics.decode_tokens == 24


def test_cancel_before_run_sends_nothing(client: EngineClient) -> None:
    sink = Sink()
    submission = client.submit(_req("Never run", 50), sink)
    submission.cancel()
    final = submission.run()
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert sink.events == [final] and client.in_flight == 0


def test_a_failing_sink_is_logged_and_the_others_go_on(
        client: EngineClient, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("a sink bug")

    good = Sink()
    neighbour = client.submit(_req("Monday, Tuesday,", 8), good)
    t = threading.Thread(target=neighbour.run)
    t.start()
    with caplog.at_level(logging.ERROR, logger="hearth.engine"):
        final = client.submit(_req("Oops", 8), broken).run()
    t.join(timeout=120)
    assert isinstance(final, DoneEvent)  # the request itself finished
    assert "an event sink failed" in caplog.text
    assert isinstance(good.events[-1], DoneEvent) and len(good.events[-1].tokens) == 8


def test_a_dead_worker_ends_the_pushed_stream_with_its_text_and_the_next_one_works(
        default_model: Path) -> None:
    with EngineClient() as c:
        c.load(EngineConfig(model_path=default_model, n_ctx=512, warmup=False))
        pid = c.worker_pid
        assert pid is not None
        sink = Sink(then=(4, lambda: os.kill(pid, signal.SIGKILL)))
        final = c.submit(_req("Once upon a time", 400), sink).run()
        assert isinstance(final, ErrorEvent) and final.kind == "WorkerDied"
        assert "SIGKILL" in final.message and final.partial_text == sink.text != ""
        again = Sink()
        assert isinstance(c.submit(_req("Hello", 4), again).run(), DoneEvent)
        assert c.worker_pid != pid


def test_the_pool_pushes_through_its_worker_and_cancels_while_waiting(
        default_model: Path) -> None:
    config = EngineConfig(model_path=default_model, n_ctx=512, warmup=False, validate=False)
    with EnginePool(budget=MemoryBudget(8 << 30), defaults=config) as pool:
        sink = Sink()
        final = pool.submit(_req("One, two,", 6), sink, config).run()
        assert isinstance(final, DoneEvent) and len(final.tokens) == 6
        assert sink.threads == {"engine-events"} and sink.events[-1] is final
        view = pool.backend_for(config)
        early = submit(view, _req("Never", 6), Sink())
        early.cancel()
        assert isinstance(early.run(), DoneEvent)
        assert pool.in_flight_for(config) == 0


def test_a_backend_without_submit_is_pulled_on_the_callers_thread() -> None:
    class Pull:
        def generate(self, request: GenerationRequest) -> Iterator[Event]:
            yield TextEvent("a", 1)
            yield DoneEvent("length", "a", None)  # type: ignore[arg-type]

    sink = Sink()
    submission = submit(Pull(), _req("x", 1), sink)
    assert isinstance(submission, PulledSubmission)
    final = submission.run()
    assert isinstance(final, DoneEvent) and final.text == "a"
    assert sink.threads == {threading.current_thread().name}
