"""A tiny real HTTP server in front of llama-server that first says "busy", then proxies.

For the one case a real engine will not produce on demand: a 503 or 429 with a
``Retry-After``. It answers the next generation requests with the statuses queued in
:attr:`FlakyProxy.failures` (each with its ``Retry-After``), records when each request
arrived, then forwards the request to the real llama-server and streams its answer back
byte for byte. FastAPI + uvicorn on 127.0.0.1, in a thread of the test process.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.remote.servers import HOST


class FlakyProxy:
    """``failures``: (status, Retry-After header or None) answered, in order, to the next
    POSTs; ``arrivals``: (perf_counter seconds, status answered) per POST."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")  # ".../v1"
        self.failures: deque[tuple[int, str | None]] = deque()
        self.arrivals: list[tuple[float, int]] = []
        self.ignore_stream = False  # answer as a server that does not stream: one JSON body
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self.port = self._sock.getsockname()[1]
        self.app = self._build()
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def fail_next(self, *failures: tuple[int, str | None]) -> None:
        self.failures.extend(failures)
        self.arrivals.clear()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models(request: Request) -> Response:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{self.upstream}/models",
                                     headers=_forwarded(request))
            return Response(r.content, r.status_code, media_type="application/json")

        @app.post("/v1/{path:path}")
        async def generate(path: str, request: Request) -> Response:
            body = await request.body()
            if self.failures:
                status, after = self.failures.popleft()
                self.arrivals.append((time.perf_counter(), status))
                headers = {"Retry-After": after} if after is not None else {}
                return JSONResponse({"error": {"message": "server busy", "code": status}},
                                    status, headers=headers)
            self.arrivals.append((time.perf_counter(), 200))
            if self.ignore_stream:
                data = {**json.loads(body), "stream": False}
                data.pop("stream_options", None)
                async with httpx.AsyncClient(timeout=None) as plain:
                    r = await plain.post(f"{self.upstream}/{path}", json=data,
                                         headers=_forwarded(request))
                return Response(r.content, r.status_code, media_type="application/json")
            client = httpx.AsyncClient(timeout=None)
            upstream = client.build_request("POST", f"{self.upstream}/{path}", content=body,
                                            headers=_forwarded(request))
            r = await client.send(upstream, stream=True)

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in r.aiter_raw():
                        yield chunk
                finally:
                    await r.aclose()
                    await client.aclose()

            return StreamingResponse(relay(), r.status_code,
                                     media_type=r.headers.get("content-type"))

        return app

    def start(self) -> FlakyProxy:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the flaky proxy did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _forwarded(request: Request) -> dict[str, str]:
    keep = ("authorization", "content-type", "accept")
    return {k: v for k, v in request.headers.items() if k.lower() in keep}
