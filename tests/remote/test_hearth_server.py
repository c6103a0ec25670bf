"""Another Hearth as the remote engine: ``hearth-cli serve`` in its own process, reached
through the OpenAI API only, as a second machine would be — through the backend and the
CLI: the model list, a streamed chat, and a cancel that the serving Hearth's own
``/metrics`` show ended the generation early there."""

from __future__ import annotations

import json
import signal
import time

from core.engine import ChatMessage, DoneEvent, GenerationRequest, TextEvent
from core.engine.remote import RemoteBackend
from core.engine.sampling import SamplingParams
from tests.remote.servers import HearthServe
from tests.remote.test_cli import cli, popen


def test_another_hearth_serves_a_streamed_chat(hearth_server: HearthServe) -> None:
    with RemoteBackend(hearth_server.url) as backend:
        models = backend.models()
        assert models, "the server lists no model"
        info = backend.load()
        assert info.source == "remote" and info.model_name == models[0].id
        events = list(backend.generate(GenerationRequest(
            messages=[ChatMessage("user", "Tell me about the sea.")], max_tokens=24,
            sampling=SamplingParams.greedy())))
    texts = [e for e in events if isinstance(e, TextEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent), done
    assert len(texts) >= 3 and done.text == "".join(t.text for t in texts)
    assert 1 <= done.metrics.decode_tokens <= 24 and done.metrics.ttft_ms > 0


def test_cancel_reaches_another_hearth(hearth_server: HearthServe) -> None:
    assert hearth_server.wait_idle()[0]["busy_sequences"] == 0
    with RemoteBackend(hearth_server.url) as backend:
        backend.load()
        events = backend.generate(GenerationRequest(prompt="Once upon a time",
                                                    max_tokens=3000, ignore_eos=True))
        for _ in range(3):
            assert isinstance(next(events), TextEvent)
        # The serving Hearth's own counters: this request holds a sequence there ...
        assert hearth_server.metrics()["busy_sequences"] == 1
        t0 = time.perf_counter()
        backend.cancel()
        rest = list(events)
        assert time.perf_counter() - t0 < 1.0
    assert isinstance(rest[-1], DoneEvent) and rest[-1].finish_reason == "cancelled"
    # ... and frees it at once: 3000 tokens with ignore_eos would hold it for a minute.
    after, waited = hearth_server.wait_idle()
    assert after["busy_sequences"] == 0 and waited < 2.0, (after, waited)


def test_cli_streams_from_another_hearth(hearth_server: HearthServe, isolated_home) -> None:
    proc = cli(isolated_home, "generate", "--engine", hearth_server.url, "--chat", "Hi!",
               "--temperature", "0", "--max-tokens", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    tokens, done = events[:-1], events[-1]
    assert len(tokens) >= 2 and all(e["event"] == "token" for e in tokens)
    assert done["event"] == "done" and done["text"] == "".join(e["text"] for e in tokens)
    assert 1 <= done["metrics"]["decode_tokens"] <= 16
    listed = cli(isolated_home, "models", "--engine", hearth_server.url, "--json")
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout)
    assert row["server"] == "Hearth" and row["base_url"] == hearth_server.url
    shown = cli(isolated_home, "models", "--engine", hearth_server.url).stdout.split()
    assert shown[-4:] == ["?", "?", "ctx", "?"], shown  # unknown, never made up


def test_cli_ctrl_c_stops_another_hearth(hearth_server: HearthServe, isolated_home) -> None:
    assert hearth_server.wait_idle()[0]["busy_sequences"] == 0
    proc = popen(isolated_home, "generate", "--engine", hearth_server.url, "--prompt",
                 "Once upon a time", "--temperature", "0", "--max-tokens", "3000", "--json")
    assert proc.stdout is not None
    for _ in range(5):
        assert json.loads(proc.stdout.readline())["event"] == "token"
    assert hearth_server.metrics()["busy_sequences"] == 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    after, waited = hearth_server.wait_idle()
    assert after["busy_sequences"] == 0 and waited < 2.0, (after, waited)
