"""The engine in its worker process: streaming, cancellation, crashes, GPU fallback.

All with the real model in a real spawned worker. Cancellation latencies are asserted with
a generous margin (the goal is 100 ms; CI machines are shared) and printed for the record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.engine import (
    DoneEvent,
    EngineConfig,
    ErrorEvent,
    GenerationRequest,
    SamplingParams,
    TextEvent,
)
from core.engine.process.client import EngineClient, WorkerDied
from core.engine.process.worker import WorkerOptions
from tests.paths import REPO_ROOT

GREEDY = SamplingParams.greedy()
CANCEL_BOUND_S = 0.5  # the goal is 0.1 s; the margin absorbs a loaded 2-core CI machine


@pytest.fixture(scope="module")
def client(default_model: Path) -> Iterator[EngineClient]:
    with EngineClient() as c:
        c.load(EngineConfig(model_path=default_model, n_ctx=4096))
        yield c


def _cancel_latency(client: EngineClient, request: GenerationRequest,
                    after: threading.Event) -> tuple[float, DoneEvent | ErrorEvent, str]:
    """Run ``request``; cancel once ``after`` is set; return seconds from cancel() to the
    final event, the final event, and the text streamed."""
    cancelled_at: list[float] = []

    def canceller() -> None:
        after.wait(30)
        cancelled_at.append(time.perf_counter())
        client.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    text = []
    final = None
    for event in client.generate(request):
        if isinstance(event, TextEvent):
            text.append(event.text)
            after.set()
        else:
            final = event
    end = time.perf_counter()
    thread.join()
    assert final is not None
    return end - cancelled_at[0], final, "".join(text)


def test_streams_through_the_worker(client: EngineClient) -> None:
    assert client.loaded is not None and client.loaded.worker_pid != os.getpid()
    events = list(client.generate(GenerationRequest(prompt="The capital of France is",
                                                    sampling=GREEDY, max_tokens=16)))
    texts = [e for e in events if isinstance(e, TextEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.metrics.decode_tokens == 16
    assert len(texts) > 1 and "".join(t.text for t in texts) == done.text


def test_cancel_during_decode(client: EngineClient) -> None:
    started = threading.Event()
    request = GenerationRequest(prompt="Write a very long story:", sampling=GREEDY,
                                max_tokens=5000, ignore_eos=True)
    latency, final, text = _cancel_latency(client, request, started)
    print(f"\ncancel during decode: {latency * 1000:.1f} ms")
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert final.text == text and text
    assert latency < CANCEL_BOUND_S
    after = list(client.generate(GenerationRequest(prompt="Hello", sampling=GREEDY,
                                                   max_tokens=4)))
    assert isinstance(after[-1], DoneEvent) and after[-1].metrics.decode_tokens == 4


def test_cancel_during_long_prefill_keeps_cache_consistent(client: EngineClient) -> None:
    rng = random.Random(3)
    prompt = [2] + [rng.randrange(1000, 200_000) for _ in range(2000)]
    timer = threading.Event()
    threading.Timer(0.3, timer.set).start()  # well inside a ~2 s prefill on 2 cores
    request = GenerationRequest(prompt_tokens=prompt, sampling=GREEDY, max_tokens=8)
    latency, final, text = _cancel_latency(client, request, timer)
    print(f"\ncancel during a 2,000-token prefill: {latency * 1000:.1f} ms")
    assert isinstance(final, DoneEvent) and final.finish_reason == "cancelled"
    assert text == "" and final.metrics.decode_tokens == 0
    assert latency < CANCEL_BOUND_S
    # The next request works, and reuses only what was really evaluated.
    events = list(client.generate(GenerationRequest(prompt_tokens=prompt[:40],
                                                    sampling=GREEDY, max_tokens=4)))
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.metrics.decode_tokens == 4
    assert done.metrics.prefill_tokens + done.metrics.cached_tokens == 40


def test_sigkill_mid_stream_keeps_partial_text_and_recovers(client: EngineClient) -> None:
    pid = client.worker_pid
    assert pid is not None
    text: list[str] = []
    final = None
    for event in client.generate(GenerationRequest(prompt="Once upon a time", sampling=GREEDY,
                                                   max_tokens=5000, ignore_eos=True)):
        if isinstance(event, TextEvent):
            text.append(event.text)
            if len(text) == 5:
                os.kill(pid, signal.SIGKILL)
        else:
            final = event
    assert isinstance(final, ErrorEvent) and final.kind == "WorkerDied"
    assert "SIGKILL" in final.message
    assert final.partial_text == "".join(text) and len(text) >= 5
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() != "zombie"
    events = list(client.generate(GenerationRequest(prompt="Hello", sampling=GREEDY,
                                                    max_tokens=4)))
    assert isinstance(events[-1], DoneEvent)
    assert client.worker_pid not in (None, pid)


def test_model_that_aborts_llama_cpp_leaves_parent_alive(aborting_model: Path) -> None:
    """The validator refuses this file (see test_validator); here it is let through so
    llama.cpp really aborts, to prove the worker boundary holds when a validator gap does."""
    with EngineClient() as c:
        try:
            c.load(EngineConfig(model_path=aborting_model, n_ctx=256, n_gpu_layers=0,
                                validate=False))
        except WorkerDied as err:
            message = str(err)
        else:
            events = list(c.generate(GenerationRequest(prompt="hi", max_tokens=4)))
            assert isinstance(events[-1], ErrorEvent)
            message = events[-1].message
    assert "engine process" in message
    assert "SIGABRT" in message or "SIGSEGV" in message


def test_gpu_out_of_memory_falls_back_to_cpu(default_model: Path) -> None:
    with EngineClient(WorkerOptions(fail_gpu_load="oom")) as c:
        loaded = c.load(EngineConfig(model_path=default_model, n_ctx=512, n_gpu_layers=-1))
        assert loaded.gpu_layers == 0 and loaded.placement == "CPU"
        assert loaded.notes == [
            "GPU load with all layers failed: out of memory (cudaMalloc failed; injected by "
            "the test hook)",
            "GPU load with 9 layers failed: out of memory (cudaMalloc failed; injected by "
            "the test hook)",
        ]
        assert loaded.fell_back and loaded.message.endswith("running on CPU")
        events = list(c.generate(GenerationRequest(prompt="Hi", sampling=GREEDY, max_tokens=3)))
        assert isinstance(events[-1], DoneEvent)


def test_worker_death_during_gpu_load_falls_back_to_cpu(default_model: Path) -> None:
    with EngineClient(WorkerOptions(fail_gpu_load="abort")) as c:
        loaded = c.load(EngineConfig(model_path=default_model, n_ctx=512, n_gpu_layers=-1))
        assert loaded.placement == "CPU"
        assert loaded.notes == ["GPU load with all layers failed: the engine process crashed "
                                "(killed by SIGABRT)"]


PARENT_SCRIPT = """
import sys, time
from core.engine import EngineConfig
from core.engine.process.client import EngineClient
if __name__ == "__main__":
    c = EngineClient()
    c.load(EngineConfig(model_path=sys.argv[1], n_ctx=256))
    print(c.worker_pid, flush=True)
    time.sleep(600)
"""


def test_worker_exits_when_parent_is_killed(default_model: Path, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(default_model)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        worker_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert psutil.pid_exists(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not psutil.pid_exists(worker_pid) or \
                    psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker outlived its parent by 10 s")
    finally:
        parent.kill()


def test_close_leaves_no_zombie(default_model: Path) -> None:
    c = EngineClient()
    c.load(EngineConfig(model_path=default_model, n_ctx=256))
    pid = c.worker_pid
    c.close()
    assert pid is not None and not psutil.pid_exists(pid)
    assert not [p for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]
