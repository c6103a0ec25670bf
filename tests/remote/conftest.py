"""Remote-engine fixtures: real llama-servers (built once, cached) and the busy proxy.

The first run builds ``llama-server`` from the vendored llama.cpp (a few minutes on 2
cores, once per machine: ``.cache/llama-bench``). Session-scoped servers are shared by every
test here; a test that kills its server gets a fresh one of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT
from tests.remote.flaky_proxy import FlakyProxy
from tests.remote.servers import HearthServe, LlamaServer

API_KEY = "sk-hearth-test-7f3a9c1e5b"  # the keyed server's key: must appear in no log or row


@pytest.fixture(scope="session")
def llama_server_exe() -> Path:
    from bench.llama_bench import ensure_tool

    return ensure_tool("llama-server")


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llama-server-logs")


@pytest.fixture(scope="session")
def llama_server(llama_server_exe: Path, default_model: Path,
                 server_logs: Path) -> Iterator[LlamaServer]:
    """llama-server on the bundled model, 4 parallel slots, no key."""
    server = LlamaServer(llama_server_exe, default_model, server_logs).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keyed_server(llama_server_exe: Path, default_model: Path,
                 server_logs: Path) -> Iterator[LlamaServer]:
    """llama-server that demands :data:`API_KEY` (``--api-key``)."""
    server = LlamaServer(llama_server_exe, default_model, server_logs, api_key=API_KEY,
                         parallel=2, alias="gemma-keyed").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hearth_server(default_model: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[HearthServe]:
    """Another Hearth: ``hearth-cli serve`` in its own process (its own data folder)."""
    server = HearthServe(default_model, tmp_path_factory.mktemp("hearth-serve-home"))
    server.start(REPO_ROOT)
    yield server
    server.stop()


@pytest.fixture
def doomed_server(llama_server_exe: Path, default_model: Path,
                  server_logs: Path) -> Iterator[Callable[[], LlamaServer]]:
    """Factory of llama-servers a test may kill mid-reply (each its own process)."""
    made: list[LlamaServer] = []

    def make() -> LlamaServer:
        server = LlamaServer(llama_server_exe, default_model, server_logs, parallel=1,
                             ctx=4096).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def flaky_proxy(llama_server: LlamaServer) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(llama_server.url).start()
    yield proxy
    proxy.stop()
