"""Model name → backend, so one local API serves local and remote models.

Hearth's server (``hearth-cli serve``) looks the ``model`` of each request up here: a name a
remote engine lists maps to a :class:`RemoteBackend` for that model; anything else goes to
the ``default`` backend (the local worker or pool). Each remote model is reachable by its
own id and, to tell apart two engines serving the same id, as ``<endpoint name>/<id>``;
when two engines list the same bare id, the first added keeps it (and the clash is logged).
The backends of one engine share nothing but their key source; each keeps its own
connections, so one slow engine never holds up another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.engine.remote.backend import RemoteBackend
from core.engine.remote.catalog import RemoteModel
from core.engine.remote.errors import RemoteEngineError
from core.engine.remote.transport import KeySource, RetryPolicy, Timeouts

if TYPE_CHECKING:
    from core.engine.api import EngineBackend
    from core.models.engines import Endpoint, EndpointStore

log = logging.getLogger("hearth.remote")


@dataclass(frozen=True)
class Route:
    """Where a model name goes: ``backend``, and the engine's model id to ask for."""

    name: str
    backend: EngineBackend
    remote: RemoteModel | None = None


class RemoteRouter:
    """A map of model names to backends (thread-safe: the server reads it from every
    request's thread while Settings › Engines may add an engine)."""

    def __init__(self, default: EngineBackend | None = None, default_name: str = "") -> None:
        self.default = default
        self.default_name = default_name
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._owned: list[RemoteBackend] = []

    def add_engine(self, base_url: str, key: str | KeySource | None = None, name: str = "",
                   *, timeouts: Timeouts | None = None,
                   retry: RetryPolicy | None = None) -> list[str]:
        """List the engine's models and route each to it; returns the names added. Raises
        RemoteEngineError when the engine cannot be listed (nothing is added then)."""
        probe = RemoteBackend(base_url, api_key=key, timeouts=timeouts, retry=retry)
        try:
            models = probe.models()
        finally:
            probe.close()
        added = []
        for model in models:
            backend = RemoteBackend(base_url, model.id, key, timeouts=timeouts, retry=retry)
            backend.load()
            with self._lock:
                self._owned.append(backend)
                names = [f"{name}/{model.id}"] if name else []
                if model.id in self._routes:
                    log.warning("model %s is served by %s and %s; the bare name stays with "
                                "the first", model.id, self._routes[model.id].name, base_url)
                else:
                    names.insert(0, model.id)
                for alias in names:
                    self._routes[alias] = Route(alias, backend, model)
                added += names
        return added

    def add_endpoints(self, store: EndpointStore,
                      endpoints: Iterable[Endpoint] | None = None) -> dict[str, str]:
        """Route every saved endpoint; returns {endpoint name: error} for those that could
        not be listed (the others are routed)."""
        failed = {}
        for ep in endpoints if endpoints is not None else store.endpoints():
            try:
                self.add_engine(ep.base_url, _key_of(store, ep), ep.name)
            except RemoteEngineError as err:
                failed[ep.name] = str(err)
        return failed

    def route(self, model: str | None) -> Route | None:
        """The route for a request's ``model`` (None or unknown: the default backend)."""
        with self._lock:
            found = self._routes.get(model) if model else None
        if found is not None:
            return found
        if self.default is None:
            return None
        return Route(self.default_name or (model or ""), self.default)

    def backend_for(self, model: str | None) -> EngineBackend | None:
        route = self.route(model)
        return route.backend if route is not None else None

    def names(self) -> list[str]:
        """Every routed remote name (what ``/v1/models`` adds to the local models)."""
        with self._lock:
            return sorted(self._routes)

    def models(self) -> list[Route]:
        with self._lock:
            return [self._routes[n] for n in sorted(self._routes)]

    def close(self) -> None:
        """Close the remote backends this router made (not the default one)."""
        with self._lock:
            owned, self._owned, self._routes = self._owned, [], {}
        for backend in owned:
            backend.close()


def _key_of(store: EndpointStore, endpoint: Endpoint) -> KeySource:
    """The key source of a saved endpoint (read on first use, from the request's thread)."""
    return lambda: store.key(endpoint)
