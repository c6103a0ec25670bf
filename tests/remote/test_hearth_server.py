"""Another Hearth as the remote engine: ``hearth-cli serve`` in its own process, reached
through the OpenAI API only (model list, streamed chat, cancel), as a second machine
would. Waits for the server issue (15): skipped, with that reason, only while
``hearth-cli serve`` does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli import build_parser
from core.engine import ChatMessage, DoneEvent, GenerationRequest, TextEvent
from core.engine.remote import RemoteBackend
from core.engine.sampling import SamplingParams
from tests.paths import REPO_ROOT
from tests.remote.servers import HOST, free_port


def _has_serve() -> bool:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return "serve" in (sub.choices or {})


pytestmark = pytest.mark.skipif(
    not _has_serve(), reason="hearth-cli serve does not exist yet (issue 15, the local "
                             "server); this test runs as soon as it does")


@pytest.fixture(scope="module")
def hearth_server(default_model: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[str]:
    port = free_port()
    home = tmp_path_factory.mktemp("hearth-server-home")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HEARTH_HOME": str(home)}
    log = (home / "serve.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--host", HOST, "--port",
                             str(port), "--model", str(default_model)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    base = f"http://{HOST}:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, (home / "serve.out").read_text()[-2000:]
            try:
                # /health answers 503 while the model loads (the server issue's contract)
                if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "hearth-cli serve did not come up"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def test_another_hearth_serves_a_streamed_chat(hearth_server: str) -> None:
    with RemoteBackend(hearth_server) as backend:
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


def test_cancel_reaches_another_hearth(hearth_server: str) -> None:
    with RemoteBackend(hearth_server) as backend:
        backend.load()
        events = backend.generate(GenerationRequest(prompt="Once upon a time",
                                                    max_tokens=3000, ignore_eos=True))
        for _ in range(3):
            assert isinstance(next(events), TextEvent)
        t0 = time.perf_counter()
        backend.cancel()
        rest = list(events)
        assert time.perf_counter() - t0 < 1.0
    assert isinstance(rest[-1], DoneEvent) and rest[-1].finish_reason == "cancelled"
