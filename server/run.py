"""uvicorn around a :class:`HearthServer`: in a thread (the app, the tests) or in the
foreground (``hearth-cli serve``). Port 0 picks a free port; :attr:`url` tells which."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from core.errors import ConfigError
from server.app import HearthServer

log = logging.getLogger("hearth.server")


def _uvicorn_config(srv: HearthServer) -> uvicorn.Config:
    cfg = srv.config
    return uvicorn.Config(srv.asgi, host=cfg.host, port=cfg.port, log_config=None,
                          access_log=False, lifespan="on", timeout_graceful_shutdown=3,
                          server_header=False, timeout_keep_alive=30)


class ServerThread:
    """Runs the server on a daemon thread; :meth:`stop` shuts it down (in-flight requests
    are cancelled, batches keep their state for the next start)."""

    def __init__(self, srv: HearthServer) -> None:
        self.srv = srv
        self._server = uvicorn.Server(_uvicorn_config(srv))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.srv.config.base_url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._server.started

    def start(self, timeout: float = 15.0) -> str:
        """Start listening; returns the base URL (``http://host:port/v1``). Raises
        :class:`ConfigError` when the port cannot be bound."""
        self._thread = threading.Thread(target=self._server.run, name="server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.srv.close()
                raise ConfigError(f"The server could not listen on {self.srv.config.host}:"
                                  f"{self.srv.config.port} (is the port in use?).")
            time.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        if servers and servers[0].sockets:
            self.srv.config.port = servers[0].sockets[0].getsockname()[1]
        log.info("server: listening on %s", self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.srv.close()


def serve_forever(srv: HearthServer) -> None:
    """Serve in the foreground until Ctrl-C (uvicorn handles the signals)."""
    try:
        uvicorn.Server(_uvicorn_config(srv)).run()
    finally:
        srv.close()
