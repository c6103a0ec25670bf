"""Defaults that let no one in, as one pure-ASGI middleware in front of the app.

- ``Host`` must be a name the server is bound to (DNS rebinding: a web page whose name
  resolves to 127.0.0.1 would otherwise talk to the local server with the user's browser);
- a request carrying an ``Origin`` that is not listed is refused (CORS is off unless
  ``--cors-origin`` lists origins; a browser's "simple" cross-site POST would otherwise still
  run a generation even though the page cannot read the answer);
- with an API key, every route but ``/health`` needs ``Authorization: Bearer KEY``;
- bodies over the limit are refused before they are read into memory (413).

Each refusal is an OpenAI error object, logged under ``hearth.server``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from server.config import ServerConfig, is_loopback, is_wildcard
from server.errors import error_body

log = logging.getLogger("hearth.server")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OPEN_PATHS = frozenset({"/health"})


def allowed_host_names(config: ServerConfig) -> set[str]:
    """The ``Host`` names (without port) this server answers to."""
    names = {h.lower().strip("[]") for h in config.allowed_hosts}
    host = config.host.lower().strip("[]")
    if is_loopback(host) or is_wildcard(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    if is_wildcard(host):
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local"}
        with contextlib.suppress(OSError):
            names |= {str(a[4][0]) for a in socket.getaddrinfo(hostname, None)}
    else:
        names.add(host)
    return names


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """The middleware; ``config`` is read at each request (the app may change the key)."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app, self.config = app, config
        self.hosts = allowed_host_names(config)
        self.origins = {o.rstrip("/").lower() for o in config.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message, code = refusal
            log.warning("server: refused %s %s: %s", scope.get("method"), scope.get("path"),
                        message)
            await _reply(send, status, error_body(status, message, code))
            return
        if "content-length" in headers or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # A body without Content-Length (chunked) is read here up to the limit, so a body
        # that passes it is a 413 before any of it reaches the app.
        buffered = await _read_limited(receive, self.config.max_body_bytes)
        if buffered is None:
            limit = self.config.max_body_bytes
            await _reply(send, 413, error_body(413, _too_big(limit), "body_too_large"))
            return
        await self.app(scope, _replay(buffered, receive), send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = _host_name(headers.get("host", ""))
        if host not in self.hosts and not (host and self._ip_ok(host)):
            return 403, (f"Host '{headers.get('host', '')}' is not a name this server is bound "
                         "to (add it with --allowed-host if it should be)."), "host_not_allowed"
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin.rstrip("/").lower(), headers):
            return 403, (f"Requests from the web origin '{origin}' are not allowed (CORS is "
                         "off; list trusted origins with --cors-origin)."), "origin_not_allowed"
        key = self.config.api_key
        if key and scope.get("path") not in OPEN_PATHS and scope.get("method") != "OPTIONS":
            given = headers.get("authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), key.encode()):
                return 401, ("Missing or wrong API key: send 'Authorization: Bearer KEY' with "
                             "the key the server was started with."), "invalid_api_key"
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.config.max_body_bytes
            except ValueError:
                return 400, "The Content-Length header is not a number.", "invalid_request"
            if too_big:
                return 413, _too_big(self.config.max_body_bytes), "body_too_large"
        return None

    def _ip_ok(self, host: str) -> bool:
        """On a wildcard bind, any IP literal of this machine is a fair Host; names are
        still checked (a rebinding attack needs a name)."""
        import ipaddress

        if not is_wildcard(self.config.host):
            return False
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    def _origin_ok(self, origin: str, headers: dict[str, str]) -> bool:
        if "*" in self.origins or origin in self.origins:
            return True
        own = headers.get("host", "").lower()
        return origin in (f"http://{own}", f"https://{own}")  # same-origin page


def _too_big(limit: int) -> str:
    return f"The request body is larger than this server's limit of {limit // 1024} KiB."


async def _read_limited(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (or the client left)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        parts.append(body)
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body over once, then the connection's own messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
