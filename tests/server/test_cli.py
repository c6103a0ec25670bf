"""``hearth-cli batch`` (no server; resumes after a kill) and ``hearth-cli serve`` (listens at
once, /health 503 while the model loads; refuses a public host without a key), run as a
user runs them: in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.paths import REPO_ROOT


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HEARTH_HOME": str(home)}


def _cli(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, text=True,
                            env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _answered(home: Path) -> dict[int, tuple[str, int]]:
    db = home / "batch-cli" / "batches.sqlite3"
    if not db.is_file():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute("SELECT line_no, status, attempts FROM lines").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {n: (status, attempts) for n, status, attempts in rows}


def test_cli_batch_resumes_after_a_kill(default_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "anything", "prompt": f"Fact {i}: the sun is",
                       "max_tokens": 10, "temperature": 0}} for i in range(6)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    args = ("batch", str(src), "-o", str(out), "--model", str(default_model), "--ctx", "1024")
    first = _cli(home, *args)
    deadline = time.monotonic() + 240
    while sum(s != "pending" for s, _ in _answered(home).values()) < 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {n for n, (s, _) in _answered(home).items() if s != "pending"}
    assert 2 <= len(before) < 6 and not out.exists()

    second = _cli(home, *args)
    _, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert "resuming" in err and "6 answered, 0 failed" in err
    assert all(attempts == 1 for n, (_, attempts) in _answered(home).items() if n in before)
    results = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [f"q{i}" for i in range(6)]
    assert all(r["response"]["status_code"] == 200 for r in results)
    assert all(r["response"]["body"]["choices"][0]["text"] for r in results)


def test_cli_batch_rejects_a_bad_file_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"custom_id": "a", "url": "/v1/completions", "body": {}}\nnot json\n')
    proc = _cli(tmp_path / "home", "batch", str(src), "-o", str(tmp_path / "o.jsonl"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and "line 2" in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_answers_health_503_while_loading(default_model: Path, tmp_path: Path) -> None:
    port = _free_port()
    proc = _cli(tmp_path / "home", "serve", "--port", str(port), "--model", str(default_model),
                "--ctx", "1024")
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while not seen or seen[-1] != 200:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, seen
            with contextlib.suppress(httpx.TransportError):
                seen.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code)
            time.sleep(0.02)
        assert 503 in seen  # it listened before the model was ready
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"prompt": "Hello", "max_tokens": 2})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_cli_serve_refuses_a_public_host_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "cli", "serve", "--host", "0.0.0.0"],
                          cwd=REPO_ROOT, text=True, capture_output=True, timeout=60,
                          env={**env, "PYTHONPATH": str(REPO_ROOT),
                               "HEARTH_HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stderr.startswith("hearth-cli: error: Refusing to listen on 0.0.0.0")
    assert "Traceback" not in proc.stderr
