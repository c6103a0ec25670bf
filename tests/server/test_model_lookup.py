"""A request for a model name the server has not seen is looked up in the engine pool's
catalog, which scans the library on disk; that scan runs in a thread, so the event loop
keeps answering everyone else meanwhile.

The pool here has nothing loaded (no worker is started) and its catalog's models folder
sits on a slow disk (the folder lookup takes ``SCAN_S``, as a network drive or a cold
spinning disk would): a chat request for an unknown name must still be a 404, and
``/health`` asked during the scan must answer long before the scan ends."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.engine import EngineConfig
from core.engine.pool import Catalog, EnginePool, MemoryBudget
from core.models.library import Library
from server import ServerConfig, create_server
from server.pool_router import PoolRouter
from server.run import ServerThread

SCAN_S = 1.5


@pytest.fixture
def pool_server(default_model: Path, tmp_path: Path) -> Iterator[tuple[str, list[float]]]:
    scans: list[float] = []
    folder = tmp_path / "models"
    folder.mkdir()

    def slow_folder() -> Path:
        scans.append(time.monotonic())
        time.sleep(SCAN_S)
        return folder

    library = Library(hf_cache=tmp_path / "no-hf", ollama_roots=[], lmstudio_roots=[],
                      default_model=lambda: default_model)
    pool = EnginePool(budget=MemoryBudget(1 << 30), catalog=Catalog(library, slow_folder),
                      defaults=EngineConfig(model_path=default_model, n_ctx=512))
    srv = create_server(PoolRouter(pool), ServerConfig(port=0, data_dir=tmp_path / "srv"))
    thread = ServerThread(srv)
    thread.start()
    try:
        yield thread.url.removesuffix("/v1"), scans
    finally:
        thread.stop()
        pool.close()


def test_an_unknown_model_name_is_looked_up_off_the_event_loop(
        pool_server: tuple[str, list[float]]) -> None:
    root, scans = pool_server
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        chat = ex.submit(httpx.post, f"{root}/v1/chat/completions", timeout=30, json={
            "model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]})
        deadline = time.monotonic() + 10
        while not scans and time.monotonic() < deadline:
            time.sleep(0.005)
        assert scans, "the catalog was never scanned"
        t0 = time.monotonic()
        health = httpx.get(f"{root}/health", timeout=30)
        waited = time.monotonic() - t0
        in_scan = time.monotonic() - scans[0] < SCAN_S
        reply = chat.result()
    print(f"\n/health answered in {waited * 1000:.0f} ms during a {SCAN_S:.1f} s scan")
    assert health.status_code in (200, 503)  # nothing loaded: 503 "no_model", promptly
    assert in_scan and waited < SCAN_S / 3
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "model_not_found"
