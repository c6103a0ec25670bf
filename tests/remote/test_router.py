"""RemoteRouter: model names to backends across two real engines (one with a key), the
default for everything else, and an engine that cannot be listed reported, not routed."""

from __future__ import annotations

from core.engine import DoneEvent, GenerationRequest
from core.engine.remote import RemoteBackend, RemoteRouter
from core.engine.sampling import SamplingParams
from core.models.engines import EndpointStore
from tests.remote.conftest import API_KEY
from tests.remote.servers import ALIAS, LlamaServer, free_port


def test_names_route_to_their_engines(llama_server: LlamaServer,
                                      keyed_server: LlamaServer) -> None:
    store = EndpointStore()
    store.add(llama_server.url, name="box")
    store.add(keyed_server.url, API_KEY, name="keyed")
    store.add(f"127.0.0.1:{free_port()}", name="down")
    default = RemoteBackend(llama_server.url)  # any EngineBackend: the local pool in the app
    router = RemoteRouter(default, default_name="local")
    try:
        failed = router.add_endpoints(store)
        assert list(failed) == ["down"] and "Cannot reach the engine" in failed["down"]
        assert router.names() == [f"box/{ALIAS}", ALIAS, "gemma-keyed", "keyed/gemma-keyed"]
        keyed = router.route("keyed/gemma-keyed")
        assert keyed is not None and keyed.remote is not None
        assert keyed.remote.base_url == keyed_server.url
        assert router.backend_for("gemma-keyed") is keyed.backend
        events = list(keyed.backend.generate(GenerationRequest(
            prompt="Hello", max_tokens=4, sampling=SamplingParams.greedy())))
        assert isinstance(events[-1], DoneEvent)  # the saved key went along
        fallback = router.route("some-local-model")
        assert fallback is not None and fallback.backend is default
        assert fallback.name == "local" and fallback.remote is None
        assert router.backend_for(None) is default
    finally:
        router.close()
        default.close()
    assert router.names() == []


def test_the_same_model_on_two_engines_keeps_both_reachable(
        llama_server: LlamaServer) -> None:
    router = RemoteRouter()
    try:
        assert router.add_engine(llama_server.url, name="a") == [ALIAS, f"a/{ALIAS}"]
        assert router.add_engine(f"127.0.0.1:{llama_server.port}", name="b") == [f"b/{ALIAS}"]
        first, second = router.route(f"a/{ALIAS}"), router.route(f"b/{ALIAS}")
        assert first is not None and second is not None
        bare = router.route(ALIAS)
        assert bare is not None and bare.backend is first.backend
        assert first.backend is not second.backend
        assert router.route("unknown") is None  # no default: the caller answers 404
    finally:
        router.close()
