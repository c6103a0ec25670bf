"""The server under test: the real default model in a real worker process, served by
uvicorn on a free port of 127.0.0.1, driven by the official ``openai`` client.

One engine for the whole session (loading costs seconds); each test module gets its own
server around it (a fresh data folder, its own settings), so modules never share state
but never reload the model either."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import openai
import pytest

from core.engine import EngineConfig
from core.engine.process.client import EngineClient
from server import HearthServer, ModelRouter, ServerConfig, create_server
from server.run import ServerThread


@pytest.fixture(scope="session")
def server_engine(default_model: Path) -> Iterator[EngineClient]:
    client = EngineClient()
    # Eight sequences where the engine batches them (continuous batching): the server then
    # admits eight requests at once; a one-sequence engine serves them in turn.
    parallel = {"n_seq_max": 8} if "n_seq_max" in {f.name for f in fields(EngineConfig)} \
        else {}
    client.load(EngineConfig(model_path=default_model, n_ctx=4096, **parallel))
    yield client
    client.close()


class Running:
    """A started server: its object, its URL, and clients for it."""

    def __init__(self, srv: HearthServer, thread: ServerThread) -> None:
        self.srv, self.thread = srv, thread

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    @property
    def model(self) -> str:
        return self.srv.router.served.public_name

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=self.srv.config.api_key or "none",
                             max_retries=kwargs.pop("max_retries", 0),
                             timeout=kwargs.pop("timeout", 120), **kwargs)

    def stop(self) -> None:
        self.thread.stop()


StartServer = Callable[..., Running]


@pytest.fixture(scope="module")
def start_server(server_engine: EngineClient,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Start servers around the session's engine (each on its own free port); all are
    stopped when the module ends. ``data_dir`` reuses a folder (a restart)."""
    running: list[Running] = []
    backend: Any = server_engine

    def start(data_dir: Path | None = None, **config: Any) -> Running:
        folder = data_dir or tmp_path_factory.mktemp("server-data")
        srv = create_server(ModelRouter(backend),
                            ServerConfig(port=0, data_dir=folder, **config))
        thread = ServerThread(srv)
        thread.start()
        started = Running(srv, thread)
        running.append(started)
        return started

    yield start
    for started in running:
        started.stop()


@pytest.fixture(scope="module")
def api(start_server: StartServer) -> Running:
    """The module's default server (default settings, a port of its own)."""
    return start_server()
