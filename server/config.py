"""How the server runs: plain data, checked once before anything listens.

The defaults let no one in: loopback only, no CORS, a body limit, a bounded queue. A
non-loopback host refuses to start without an API key (anyone on the network could
otherwise use the model, read batch files, or fill the disk).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError

DEFAULT_PORT = 8642  # not 8080 (llama-server), 11434 (Ollama) or 1234 (LM Studio)
DEFAULT_BODY_LIMIT = 32 * 1024 * 1024  # a batch input file of ~50,000 short requests


def is_loopback(host: str) -> bool:
    """True for names that only this machine can reach (``localhost``, 127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


@dataclass
class ServerConfig:
    """``max_queue``: requests allowed to wait beyond the running ones before new ones get
    429; ``parallel``: requests run at once, at most the sequences the engine loaded (None:
    all of them); ``max_tokens_cap``: the longest reply a request may ask for (None: the
    context); ``data_dir``: where files and batch state live (None: Hearth's data folder)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    max_body_bytes: int = DEFAULT_BODY_LIMIT
    max_queue: int = 64
    parallel: int | None = None
    max_tokens_cap: int | None = None
    data_dir: Path | None = None
    batch_workers: int | None = None  # requests a batch runs at once (None: half the slots)

    def check(self) -> None:
        """Raise :class:`ConfigError` for a setting that is unsafe or impossible."""
        if not is_loopback(self.host) and not self.api_key:
            raise ConfigError(
                f"Refusing to listen on {self.host} without an API key: anyone who can reach "
                "this machine could use it. Pass --api-key KEY (clients send it as "
                "'Authorization: Bearer KEY'), or keep the default host 127.0.0.1.")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"Port {self.port} is not a TCP port (0-65535).")
        if self.max_body_bytes < 1024:
            raise ConfigError("The request body limit must be at least 1 KiB.")
        if self.max_queue < 0:
            raise ConfigError("The queue length cannot be negative.")
        if self.parallel is not None and self.parallel < 1:
            raise ConfigError("--parallel must be at least 1.")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigError(f"CORS origin {origin!r} must look like https://host[:port].")

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if is_wildcard(self.host) else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"
