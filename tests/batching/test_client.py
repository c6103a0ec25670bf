"""Many consumers of one worker: events routed by request id, cancel by id, the worker
serving requests while others run."""

from __future__ import annotations

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
)
from core.engine.process.client import EngineClient

GREEDY = SamplingParams.greedy()


@pytest.fixture(scope="module")
def client(default_model: Path) -> Iterator[EngineClient]:
    with EngineClient() as c:
        c.load(EngineConfig(model_path=default_model, n_ctx=2048, n_seq_max=4))
        yield c


def _req(prompt: str, n: int) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=n, ignore_eos=True)


def test_concurrent_consumers_each_get_their_own_stream(client: EngineClient) -> None:
    prompts = ["One, two, three,", "Red, green,", "Monday, Tuesday,", "A, B, C,"]
    alone = {}
    for p in prompts:
        *_, done = client.generate(_req(p, 12))
        assert isinstance(done, DoneEvent)
        alone[p] = done.tokens
    streams: dict[str, list[Event]] = {}

    def consume(prompt: str) -> None:
        streams[prompt] = list(client.generate(_req(prompt, 12)))

    threads = [threading.Thread(target=consume, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert client.in_flight == 0
    for prompt in prompts:
        *texts, done = streams[prompt]
        assert isinstance(done, DoneEvent) and done.metrics.decode_tokens == 12
        assert "".join(t.text for t in texts) == done.text  # no event went to another stream
        assert len(done.tokens) == 12
        # same text alone and together unless batched kernels tip a near-tie (see
        # tests/batching/test_scheduler.py, which measures the gap)
        assert done.tokens[:2] == alone[prompt][:2]


def test_cancel_by_id_stops_one_stream_only(client: EngineClient) -> None:
    long = client.generate(_req("Count: 1, 2, 3,", 400))
    short = client.generate(_req("Colours: red,", 30))
    results: dict[str, DoneEvent] = {}

    def consume(name: str, stream: Iterator[Event]) -> None:
        for event in stream:
            if isinstance(event, DoneEvent):
                results[name] = event

    t1 = threading.Thread(target=consume, args=("long", long))
    t2 = threading.Thread(target=consume, args=("short", short))
    t1.start()
    t2.start()
    t2.join(timeout=300)
    long.cancel()
    t1.join(timeout=300)
    assert results["short"].finish_reason == "length"
    assert results["short"].metrics.decode_tokens == 30
    assert results["long"].finish_reason == "cancelled"
    assert results["long"].metrics.decode_tokens < 400


def test_a_grammar_dead_end_fails_its_request_and_no_other(client: EngineClient) -> None:
    """No token's text can start a NUL character, and the grammar is not complete, so
    nothing is allowed: llama.cpp would throw from inside its sampler and abort the worker
    with every stream in it. The request gets a GrammarError; a stream beside it and the
    worker live on."""
    pid = client.worker_pid
    beside = client.generate(_req("Count: 1, 2, 3,", 40))
    first = next(beside)  # decoding before the bad request arrives
    for temperature in (0.0, 0.8):  # greedy's and the sampled path's re-draw
        dead = SamplingParams(temperature=temperature, grammar='root ::= "\\x00"')
        *_, final = client.generate(GenerationRequest(prompt="Hello", sampling=dead,
                                                      max_tokens=8))
        assert isinstance(final, ErrorEvent), final
        assert final.kind == "GrammarError" and "dead end" in final.message
    *_, done = [first, *beside]
    assert isinstance(done, DoneEvent) and done.metrics.decode_tokens == 40
    assert client.worker_pid == pid and client.alive
