"""Remote engines the user added (Settings › Engines): OpenAI-compatible base URLs.

The list is ``engines.json`` in Hearth's home: an id, a name and a base URL per endpoint,
never a key (keys live in :mod:`core.secrets`, under the endpoint's id). Base URLs are
normalised once, here, so the app, the CLI and the router agree on what "the same engine"
is: a scheme is required to be http or https, a missing path becomes ``/v1`` (what vLLM,
llama-server, Ollama and Hearth serve), and credentials in the address are refused, since
the address is shown in the window, written to the log and kept in the history.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigError
from core.paths import hearth_home
from core.secrets import KeyStore

ENGINES_FILE = "engines.json"


def normalize_base_url(url: str) -> str:
    """``http://host:port/v1`` from what a user typed (``host:port``, a trailing slash,
    no path); :class:`ConfigError` for anything that is not an http(s) address."""
    text = url.strip()
    if not text:
        raise ConfigError("Enter the engine's address, e.g. http://192.168.1.20:8000/v1.")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"The engine address must start with http:// or https://, not "
                          f"{parts.scheme}://.")
    if parts.username or parts.password:
        raise ConfigError("Put the API key in the key field, not in the address (the "
                          "address is shown and logged).")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"The port in {url.strip()!r} is not a number from 1 to "
                          "65535.") from None
    if not parts.hostname:
        raise ConfigError(f"{url.strip()!r} has no host name.")
    if parts.query or parts.fragment:
        raise ConfigError("The engine address takes no ?query or #fragment.")
    path = parts.path.rstrip("/") or "/v1"
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets
        netloc = f"[{parts.hostname}]" + ("" if port is None else f":{port}")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass(frozen=True)
class Endpoint:
    """One remote engine. ``id`` names its key in the :class:`KeyStore`."""

    id: str
    name: str
    base_url: str
    has_key: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.base_url})" if self.name != self.base_url else self.name


class EndpointStore:
    """The saved endpoints and their keys. ``keys``: where keys go (default: the system
    keyring, else an owner-only file); ``path``: the list (default: ``engines.json``)."""

    def __init__(self, keys: KeyStore | None = None, path: Path | None = None) -> None:
        self.keys = keys or KeyStore()
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path or hearth_home() / ENGINES_FILE

    def endpoints(self) -> list[Endpoint]:
        try:
            rows = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            raise ConfigError(f"The engine list {self.path} is damaged ({err}); remove it "
                              "and add the engines again.") from None
        known = {"id", "name", "base_url", "has_key"}
        return [Endpoint(**{k: v for k, v in row.items() if k in known}) for row in rows
                if isinstance(row, dict) and {"id", "name", "base_url"} <= row.keys()]

    def add(self, base_url: str, key: str = "", name: str = "") -> Endpoint:
        """Save an endpoint (its key in the key store); an address already saved is
        updated in place, key included."""
        url = normalize_base_url(base_url)
        with self._lock:
            rows = self.endpoints()
            old = next((e for e in rows if e.base_url == url), None)
            endpoint = Endpoint(old.id if old else uuid.uuid4().hex[:8],
                                name.strip() or (old.name if old else url), url, bool(key))
            if key:
                self.keys.set(endpoint.id, key)
            else:
                self.keys.delete(endpoint.id)
            rows = [endpoint if e.base_url == url else e for e in rows]
            if old is None:
                rows.append(endpoint)
            self._save(rows)
        return endpoint

    def remove(self, endpoint_id: str) -> None:
        with self._lock:
            rows = self.endpoints()
            self._save([e for e in rows if e.id != endpoint_id])
        self.keys.delete(endpoint_id)

    def find(self, base_url: str) -> Endpoint | None:
        url = normalize_base_url(base_url)
        return next((e for e in self.endpoints() if e.base_url == url), None)

    def key(self, endpoint: Endpoint) -> str | None:
        return self.keys.get(endpoint.id) if endpoint.has_key else None

    def _save(self, rows: list[Endpoint]) -> None:
        path = self.path
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps([asdict(e) for e in rows], indent=2))
        os.replace(tmp, path)
