"""The local server over the pool, driven by the official ``openai`` client: ``/v1/models``
lists every runnable model with its state, each request's ``model`` is answered by that
model's own worker (loaded on first use), an unknown one is a 404; and cancelling one
request through the pool stops it alone."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import openai
import pytest

from core.engine import DoneEvent, GenerationRequest, SamplingParams, TextEvent
from core.engine.pool import EnginePool, id_from_file
from core.paths import models_dir
from server import ServerConfig, create_server
from server.pool_router import PoolRouter, router_for
from server.run import ServerThread
from tests.pool.conftest import Models, ask, final

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def served(pool: EnginePool, models: Models,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, str, str]]:
    pool.set_budget(models.both)
    pool.load(models.q4)  # the server's default model
    srv = create_server(PoolRouter(pool), ServerConfig(port=0,
                                                       data_dir=tmp_path_factory.mktemp("srv")))
    thread = ServerThread(srv)
    thread.start()
    client = openai.OpenAI(base_url=thread.url, api_key="none", max_retries=0, timeout=120)
    yield client, id_from_file(models.q4.model_path), id_from_file(models.q8.model_path)
    thread.stop()


def test_server_routes_each_model_to_its_own_worker(served: tuple[openai.OpenAI, str, str],
                                                    pool: EnginePool, models: Models) -> None:
    client, q4_id, q8_id = served
    pool.unload(models.q8)
    os.symlink(models.q8.model_path, models_dir() / models.q8.model_path.name)  # dropped in
    listed = {m.id: m for m in client.models.list().data}
    assert {q4_id, q8_id} <= listed.keys()  # every runnable model, loaded or not
    assert listed[q4_id].state == "loaded" and listed[q4_id].default
    assert listed[q8_id].state == "available"

    answers = {}
    for model_id in (q4_id, q8_id, "default"):  # interleaved: Q4, Q8, Q4 again
        answers[model_id] = client.completions.create(model=model_id, prompt=PROMPT,
                                                      max_tokens=6, temperature=0,
                                                      logprobs=1)
    for model_id, cfg in ((q4_id, models.q4), (q8_id, models.q8)):
        direct = final(ask(pool, cfg, PROMPT))  # the pool's own answer on that model
        got = answers[model_id].choices[0]
        assert answers[model_id].model == model_id
        assert got.text == direct.text
    q4_lp = answers[q4_id].choices[0].logprobs.token_logprobs
    q8_lp = answers[q8_id].choices[0].logprobs.token_logprobs
    assert answers["default"].choices[0].logprobs.token_logprobs == pytest.approx(q4_lp,
                                                                                  abs=1e-4)
    assert max(abs(a - b) for a, b in zip(q4_lp, q8_lp, strict=True)) > 1e-3  # other weights
    listed = {m.id: m for m in client.models.list().data}
    assert listed[q8_id].state == "loaded"  # loaded by the request that named it
    assert client.models.retrieve(q8_id).id == q8_id


def test_unknown_model_is_a_404_error_object(served: tuple[openai.OpenAI, str, str]) -> None:
    client = served[0]
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", max_tokens=4,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_the_apps_view_gets_the_pool_router(pool: EnginePool) -> None:
    assert isinstance(router_for(pool.backend_for()), PoolRouter)


def test_cancelling_one_request_leaves_the_others_on_that_model(pool: EnginePool,
                                                                models: Models) -> None:
    pool.set_budget(models.both)
    request = GenerationRequest(prompt="Once upon a time", max_tokens=16,
                                sampling=SamplingParams.greedy(), reuse_cache=False)
    view = pool.backend_for(models.q4)  # both requests through one view, as the server does
    kept, stopped = view.generate(request), view.generate(request)
    got: dict[str, list] = {"kept": [], "stopped": []}

    def read(name: str, stream: Iterator) -> None:
        for event in stream:
            got[name].append(event)
            if name == "stopped" and isinstance(event, TextEvent):
                stopped.cancel()  # EventStream.cancel: this request only

    threads = [threading.Thread(target=read, args=("kept", kept)),
               threading.Thread(target=read, args=("stopped", stopped))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done_kept, done_stopped = final(got["kept"]), final(got["stopped"])
    assert isinstance(done_stopped, DoneEvent) and done_stopped.finish_reason == "cancelled"
    assert done_kept.finish_reason != "cancelled"
    assert done_kept.text == final(ask(pool, models.q4, "Once upon a time", 16)).text
