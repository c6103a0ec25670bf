"""Real OpenAI-compatible servers on 127.0.0.1 for the remote-engine tests.

:class:`LlamaServer` runs llama.cpp's own ``llama-server`` (built from the llama.cpp that the
installed llama-cpp-python vendors, by ``bench.llama_bench.ensure_tool``) on the bundled
model, with ``--metrics`` so a test can read the server's own counters: how many tokens it
generated (``tokens_predicted_total``, flushed when a slot is released) and how many
requests are running (``requests_processing``) — which is how a test sees that a cancel
stopped the generation there, not just here.

:class:`HearthServe` runs another Hearth (``hearth-cli serve``) in its own process, reached
only through the OpenAI API, as a second machine would be; its ``/metrics`` (Prometheus
text, ``hearth_`` prefix) say how many tokens it generated and how many sequences are busy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"
ALIAS = "gemma-3-270m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def parse_prometheus(text: str) -> dict[str, float]:
    """``llamacpp:name value`` lines as {name: value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name.removeprefix("llamacpp:")] = float(value)
    return out


def parse_prometheus_prefixed(text: str, prefix: str) -> dict[str, float]:
    """Unlabelled ``<prefix>name value`` lines as {name: value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix) and "{" not in line and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix(prefix)] = float(value)
    return out


class _ServerProcess:
    """A server process on ``HOST:port``: its URLs, waiting for ``/health`` to answer 200
    (Hearth's answers 503 while its model loads), stopping it."""

    name = "server"
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def root(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, as a user types it."""
        return f"{self.root}/v1"

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): "
                                   + self.log_path.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"{self.root}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f} s")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the connections drop as if the machine went away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class LlamaServer(_ServerProcess):
    """One ``llama-server`` process; ``api_key`` makes it demand a key."""

    name = "llama-server"

    def __init__(self, exe: Path, model: Path, log_dir: Path, *, api_key: str | None = None,
                 parallel: int = 4, ctx: int = 8192, alias: str = ALIAS,
                 threads: int | None = None) -> None:
        self.exe, self.model, self.api_key, self.alias = exe, model, api_key, alias
        self.parallel, self.ctx = parallel, ctx
        # One thread: on a busy 2-core machine (the GUI, the test, other jobs) llama.cpp's
        # threads wait on each other at every barrier; one thread never waits for another.
        self.threads = threads or 1
        self.port = free_port()
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LlamaServer:
        cmd = [str(self.exe), "-m", str(self.model), "--host", HOST, "--port", str(self.port),
               "-c", str(self.ctx), "-np", str(self.parallel), "-t", str(self.threads),
               "-a", self.alias, "--metrics", "--slots", "--no-webui",
               # The GGUF carries no chat template; Hearth renders Gemma's locally, and a
               # server is configured the same way (llama-server would fall back to ChatML).
               "--no-jinja", "--chat-template", "gemma"]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_healthy(timeout)
        return self

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def metrics(self) -> dict[str, float]:
        """The server's own Prometheus counters."""
        r = httpx.get(f"{self.root}/metrics", headers=self._headers(), timeout=5.0)
        r.raise_for_status()
        return parse_prometheus(r.text)

    def wait_idle(self, timeout: float = 10.0) -> dict[str, float]:
        """The counters once no request runs (a cancelled one has released its slot)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            if m.get("requests_processing", 0) == 0 or time.monotonic() > deadline:
                return m
            time.sleep(0.02)


class HearthServe(_ServerProcess):
    """``hearth-cli serve`` on the bundled model in its own process and data folder."""

    name = "hearth-cli serve"

    def __init__(self, model: Path, home: Path) -> None:
        self.model, self.home = model, home
        self.port = free_port()
        self.log_path = home / "serve.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, repo_root: Path, timeout: float = 120.0) -> HearthServe:
        env = {**os.environ, "PYTHONPATH": str(repo_root), "HEARTH_HOME": str(self.home)}
        env.pop("HEARTH_API_KEY", None)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--host", HOST, "--port",
                 str(self.port), "--model", str(self.model)], stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=repo_root)
        self._wait_healthy(timeout)
        return self

    def metrics(self) -> dict[str, float]:
        r = httpx.get(f"{self.root}/metrics", timeout=5.0)
        r.raise_for_status()
        return parse_prometheus_prefixed(r.text, "hearth_")

    def wait_idle(self, timeout: float = 10.0) -> tuple[dict[str, float], float]:
        """The counters once no sequence is busy, and how long that took (s)."""
        t0 = time.monotonic()
        while True:
            m = self.metrics()
            waited = time.monotonic() - t0
            if m.get("busy_sequences", 0) == 0 or waited > timeout:
                return m, waited
            time.sleep(0.02)
