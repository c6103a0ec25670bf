"""RemoteBackend against a real llama-server on 127.0.0.1: streaming, the client's own
figures, cancel that the server itself sees, concurrent requests, timeouts, unknown model,
unreachable engine, a wrong key."""

from __future__ import annotations

import threading
import time

import pytest

from core.engine import ChatMessage, DoneEvent, ErrorEvent, GenerationRequest, TextEvent
from core.engine.remote import (
    EngineAuthError,
    EngineRejectedError,
    EngineUnreachableError,
    RemoteBackend,
    Timeouts,
)
from core.engine.sampling import SamplingParams
from tests.remote.conftest import API_KEY
from tests.remote.servers import ALIAS, LlamaServer, free_port

GREEDY = SamplingParams.greedy()


def run(backend: RemoteBackend, request: GenerationRequest) -> tuple[list[TextEvent], object]:
    texts, final = [], None
    for event in backend.generate(request):
        if isinstance(event, TextEvent):
            texts.append(event)
        else:
            final = event
    return texts, final


@pytest.fixture(scope="module")
def remote(llama_server: LlamaServer):
    with RemoteBackend(llama_server.url) as backend:
        backend.load()
        yield backend


def test_models_and_load_describe_the_server(remote: RemoteBackend,
                                             llama_server: LlamaServer) -> None:
    models = remote.models()
    assert [m.id for m in models] == [ALIAS]
    assert models[0].server == "llama-server" and models[0].source == "remote · llama-server"
    assert models[0].n_ctx and models[0].n_ctx >= 32768  # Gemma 3's training context
    info = remote.loaded
    assert info is not None and info.source == "remote" and info.backend == "llama-server"
    assert info.model_name == ALIAS and info.worker_pid == 0
    assert info.placement == f"remote: llama-server at 127.0.0.1:{llama_server.port}"


def test_chat_streams_with_client_measured_metrics(remote: RemoteBackend) -> None:
    request = GenerationRequest(messages=[ChatMessage("user", "Tell me about the sea.")],
                                sampling=GREEDY, max_tokens=40, ignore_eos=True)
    t0 = time.perf_counter_ns()
    texts, done = run(remote, request)
    t1 = time.perf_counter_ns()
    assert isinstance(done, DoneEvent), done
    assert len(texts) >= 10 and done.text == "".join(t.text for t in texts)
    assert done.finish_reason == "length"
    m = done.metrics
    assert m.decode_tokens == 40  # the server's usage
    assert m.llama_decode_tokens == 40  # ... and its own timings agree
    assert m.prompt_tokens > 5
    assert t0 <= m.t_start_ns < texts[0].t_ns <= texts[-1].t_ns <= m.t_end_ns <= t1
    assert m.ttft_ms == pytest.approx((texts[0].t_ns - m.t_start_ns) / 1e6, rel=1e-6)
    own = (len(texts) - 1) / ((texts[-1].t_ns - texts[0].t_ns) / 1e9)
    assert m.decode_tok_s == pytest.approx(own, rel=0.03)
    assert len(m.token_latencies_ms) == len(texts)
    assert m.token_latencies_ms[0] == pytest.approx(m.ttft_ms, rel=1e-6)
    # The client's decode time includes the network; llama.cpp's own is inside it.
    assert m.llama_decode_ms <= m.decode_ms * 1.1 + 5


def test_completion_mode_and_greedy_is_reproducible(remote: RemoteBackend) -> None:
    request = GenerationRequest(prompt="The capital of France is", sampling=GREEDY,
                                max_tokens=12, ignore_eos=True)
    first = run(remote, request)[1]
    second = run(remote, request)[1]
    assert isinstance(first, DoneEvent) and isinstance(second, DoneEvent)
    assert first.text and first.text == second.text
    assert second.metrics.cached_tokens > 0  # the server reused its prompt cache


def test_cancel_stops_the_generation_on_the_server(remote: RemoteBackend,
                                                   llama_server: LlamaServer) -> None:
    before = llama_server.wait_idle()["tokens_predicted_total"]
    request = GenerationRequest(prompt="Once upon a time", sampling=GREEDY, max_tokens=3000,
                                ignore_eos=True)
    events = remote.generate(request)
    got = [next(events) for _ in range(5)]
    assert all(isinstance(e, TextEvent) for e in got)
    t0 = time.perf_counter()
    threading.Thread(target=remote.cancel).start()
    rest = list(events)
    elapsed = time.perf_counter() - t0
    assert isinstance(rest[-1], DoneEvent) and rest[-1].finish_reason == "cancelled"
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    after = llama_server.wait_idle()
    assert after["requests_processing"] == 0
    generated = after["tokens_predicted_total"] - before
    print(f"\nserver generated {generated:.0f} of 3000 tokens before it saw the cancel")
    assert 5 <= generated < 300


def test_abandoning_the_stream_cancels_it_too(remote: RemoteBackend,
                                              llama_server: LlamaServer) -> None:
    before = llama_server.wait_idle()["tokens_predicted_total"]
    events = remote.generate(GenerationRequest(prompt="Once upon a time", sampling=GREEDY,
                                               max_tokens=3000, ignore_eos=True))
    for _ in range(3):
        next(events)
    events.close()  # the consumer went away (a closed window, a client disconnect)
    after = llama_server.wait_idle(5.0)
    assert after["requests_processing"] == 0
    assert after["tokens_predicted_total"] - before < 300


def test_parallel_requests_stream_independently(remote: RemoteBackend,
                                                llama_server: LlamaServer) -> None:
    prompts = ["The sea is", "Mountains are", "A good breakfast", "In the city"]
    results: dict[str, tuple[list[TextEvent], object]] = {}

    def one(prompt: str) -> None:
        results[prompt] = run(remote, GenerationRequest(prompt=prompt, sampling=GREEDY,
                                                        max_tokens=48, ignore_eos=True))

    before = llama_server.wait_idle()
    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    windows = []
    for prompt in prompts:
        texts, done = results[prompt]
        assert isinstance(done, DoneEvent), done
        assert done.text == "".join(t.text for t in texts) and done.metrics.decode_tokens == 48
        windows.append((done.metrics.t_start_ns, done.metrics.t_end_ns))
    assert max(s for s, _ in windows) < min(e for _, e in windows), "they did not overlap"
    after = llama_server.wait_idle()
    decodes = after["n_decode_total"] - before["n_decode_total"]
    assert decodes < 4 * 48, "the server decoded them one by one, not together"


def test_read_timeout_is_a_clear_error(llama_server: LlamaServer) -> None:
    long_prompt = "word " * 1500  # a prefill that takes far longer than 20 ms
    with RemoteBackend(llama_server.url, timeouts=Timeouts(read_s=0.02)) as backend:
        backend.load()
        _, final = run(backend, GenerationRequest(prompt=long_prompt, max_tokens=4,
                                                  reuse_cache=False))
    assert isinstance(final, ErrorEvent), final
    assert "sent nothing for 0.02 s" in final.message


def test_unknown_model_names_what_the_engine_serves(llama_server: LlamaServer) -> None:
    with RemoteBackend(llama_server.url, "llama-70b") as backend, \
            pytest.raises(EngineRejectedError, match=f"no model “llama-70b”; it serves: {ALIAS}"):
        backend.load()


def test_unreachable_engine_fails_fast_and_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.perf_counter()
    with RemoteBackend(url) as backend, pytest.raises(EngineUnreachableError) as err:
        backend.load()
    assert time.perf_counter() - t0 < 2.0
    assert str(err.value) == (f"Cannot reach the engine at {url} (connection refused). Check "
                              "that it is running and the address is right.")


def test_wrong_key_is_a_clear_error_and_never_echoed(keyed_server: LlamaServer) -> None:
    with RemoteBackend(keyed_server.url, api_key="sk-wrong-key") as backend, \
            pytest.raises(EngineAuthError) as err:
        backend.load()
    assert "refused the API key (401: “Invalid API Key”)" in str(err.value)
    assert "sk-wrong-key" not in str(err.value)
    with RemoteBackend(keyed_server.url, api_key=API_KEY) as backend:
        assert backend.load().model_name == "gemma-keyed"
        _, done = run(backend, GenerationRequest(prompt="Hello", max_tokens=4,
                                                 sampling=GREEDY))
        assert isinstance(done, DoneEvent) and done.metrics.decode_tokens >= 1
