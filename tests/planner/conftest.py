"""A tiny stand-in for the Hub on 127.0.0.1: file listings and files with Range support.

Real HTTP (``http.server``), so remote header reads and repo listings go through
huggingface_hub's client exactly as they would against huggingface.co.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class MiniHub:
    url: str
    repos: dict[str, dict[str, Path]] = field(default_factory=dict)  # repo -> name -> file
    bytes_served: int = 0
    honour_range: bool = True


def _handler(hub: MiniHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _file(self) -> Path | None:
            m = re.match(r"^/(.+?/.+?)/resolve/[^/]+/(.+)$", self.path.split("?")[0])
            return hub.repos.get(m[1], {}).get(m[2]) if m else None

        def do_HEAD(self) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            m = re.match(r"^/api/models/(.+?/.+?)/tree/", self.path)
            if m:
                if m[1] not in hub.repos:
                    self.send_error(404)
                    return
                body = json.dumps([{"type": "file", "path": n, "size": p.stat().st_size,
                                    "oid": "0" * 40} for n, p in hub.repos[m[1]].items()])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
                return
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            size = path.stat().st_size
            rng = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if rng and hub.honour_range:
                start = int(rng[1])
                end = min(int(rng[2]) if rng[2] else size - 1, size - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                start, end = 0, size - 1
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read(end - start + 1)
            hub.bytes_served += len(data)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

    return Handler


@pytest.fixture
def mini_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[MiniHub]:
    """A local hub; HF_ENDPOINT points at it and offline mode is off."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub := MiniHub(url="")))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once at import: mirror the unset variable.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
