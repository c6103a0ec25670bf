"""``hearth-cli generate --engine URL`` and ``models --engine URL`` in a subprocess, as a user
runs them, against real llama-servers: streaming, Ctrl-C stopping the server's generation,
503/429 waited out, a dropped connection, a wrong key; the key never in the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cli.test_generate_cli import assert_one_error_line
from tests.paths import REPO_ROOT
from tests.remote.conftest import API_KEY
from tests.remote.flaky_proxy import FlakyProxy
from tests.remote.servers import ALIAS, LlamaServer


def env(home: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "HEARTH_ENGINE_KEY"}
    return {**out, "PYTHONPATH": str(REPO_ROOT), "HEARTH_HOME": str(home), **extra}


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=120, env=env(home, **extra), cwd=REPO_ROOT)


def popen(home: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(home, **extra),
                            cwd=REPO_ROOT)


def test_generate_streams_json_from_the_engine(llama_server: LlamaServer,
                                               isolated_home: Path) -> None:
    proc = cli(isolated_home, "generate", "--engine", llama_server.url, "--chat", "Hi!",
               "--temperature", "0", "--max-tokens", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    tokens, done = events[:-1], events[-1]
    assert tokens and all(e["event"] == "token" for e in tokens)
    assert done["event"] == "done" and done["text"] == "".join(e["text"] for e in tokens)
    assert done["template"] == "the server's own"
    assert 1 <= done["metrics"]["decode_tokens"] <= 16 and done["metrics"]["ttft_ms"] > 0
    assert "accounting" not in done  # this machine's power says nothing about the engine's


def test_models_lists_what_the_engine_serves(llama_server: LlamaServer,
                                             isolated_home: Path) -> None:
    proc = cli(isolated_home, "models", "--engine", f"127.0.0.1:{llama_server.port}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == [ALIAS, "llama-server"]
    row = json.loads(cli(isolated_home, "models", "--engine", llama_server.url,
                         "--json").stdout)
    assert row["id"] == ALIAS and row["base_url"] == llama_server.url
    assert row["source"] == "remote · llama-server" and row["n_ctx"] >= 32768


def test_ctrl_c_stops_the_generation_on_the_server(llama_server: LlamaServer,
                                                   isolated_home: Path) -> None:
    before = llama_server.wait_idle()["tokens_predicted_total"]
    proc = popen(isolated_home, "generate", "--engine", llama_server.url, "--prompt",
                 "Once upon a time", "--temperature", "0", "--max-tokens", "3000", "--json")
    assert proc.stdout is not None
    for _ in range(5):
        assert json.loads(proc.stdout.readline())["event"] == "token"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    after = llama_server.wait_idle()
    assert after["requests_processing"] == 0
    assert after["tokens_predicted_total"] - before < 300


def test_busy_engine_is_waited_out(flaky_proxy: FlakyProxy, isolated_home: Path) -> None:
    flaky_proxy.fail_next((503, "1"), (429, "1"))
    proc = cli(isolated_home, "generate", "--engine", flaky_proxy.url, "--prompt", "The sea",
               "--max-tokens", "8", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    (t1, s1), (t2, s2), (t3, s3) = flaky_proxy.arrivals
    assert (s1, s2, s3) == (503, 429, 200)
    assert 1.0 <= t2 - t1 < 1.4 and 1.0 <= t3 - t2 < 1.4
    log = (isolated_home / "logs" / "hearth.log").read_text()
    assert "answered 503; retry 1 of 4 in 1.00 s (its Retry-After)" in log


def test_dropped_connection_is_one_error_line_after_the_partial_text(
        doomed_server: Callable[[], LlamaServer], isolated_home: Path) -> None:
    server = doomed_server()
    proc = popen(isolated_home, "generate", "--engine", server.url, "--prompt",
                 "Once upon a time", "--temperature", "0", "--max-tokens", "3000", "--json")
    assert proc.stdout is not None
    seen = [json.loads(proc.stdout.readline()) for _ in range(4)]
    server.kill()
    out, err = proc.communicate(timeout=30)
    events = seen + [json.loads(line) for line in out.splitlines()]
    error = events[-1]
    assert error["event"] == "error" and "dropped in the middle of the reply" in error["message"]
    assert error["partial_text"] == "".join(e["text"] for e in events[:-1]) != ""
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_error_line(completed, "dropped", "reply so far is kept")


def test_wrong_key_is_one_clear_line_and_no_key_is_logged(keyed_server: LlamaServer,
                                                          isolated_home: Path) -> None:
    proc = cli(isolated_home, "generate", "--engine", keyed_server.url, "--prompt", "Hi",
               HEARTH_ENGINE_KEY="sk-not-the-key")
    line = assert_one_error_line(proc, "refused the API key", "HEARTH_ENGINE_KEY")
    assert "sk-not-the-key" not in line
    proc = cli(isolated_home, "generate", "--engine", keyed_server.url, "--prompt", "Hi",
               "--max-tokens", "4", "--temperature", "0", HEARTH_ENGINE_KEY=API_KEY)
    assert proc.returncode == 0, proc.stderr
    log = (isolated_home / "logs" / "hearth.log").read_text()
    assert keyed_server.url in log and "refused the API key" in log
    assert API_KEY not in log and "sk-not-the-key" not in log


def test_a_key_saved_in_settings_is_used_for_that_address(keyed_server: LlamaServer,
                                                          isolated_home: Path) -> None:
    from core.models.engines import EndpointStore

    EndpointStore().add(f"127.0.0.1:{keyed_server.port}", API_KEY, "keyed")
    proc = cli(isolated_home, "generate", "--engine", keyed_server.url, "--chat", "Hi",
               "--max-tokens", "4", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "refused" not in proc.stderr
