"""The context-memory guard: a context too large for the host is refused before llama.cpp
allocates it, and only the host's share of the KV cache is counted against host memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import psutil
import pytest

from core.engine.runtime.model import LoadedModel
from core.engine.runtime.resources import check_context_fits, host_kv_share, kv_cache_bytes
from core.errors import ContextTooLargeError


@pytest.fixture(scope="module")
def model(default_model: Path) -> Iterator[LoadedModel]:
    with LoadedModel(default_model, 0) as loaded:
        yield loaded


def test_host_share_follows_the_offloaded_layers(model: LoadedModel) -> None:
    assert host_kv_share(model, 0) == 1.0
    if llama_cpp.llama_supports_gpu_offload():
        assert host_kv_share(model, -1) == 0.0
        assert host_kv_share(model, model.n_layer // 2) == pytest.approx(
            1 - (model.n_layer // 2) / model.n_layer)
    else:  # a CPU build keeps every layer's cells on the host whatever was asked
        assert host_kv_share(model, -1) == 1.0 and host_kv_share(model, 5) == 1.0


def test_a_context_larger_than_free_memory_is_refused(model: LoadedModel,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    need = kv_cache_bytes(model, 8192)
    real = psutil.virtual_memory()
    short = real._replace(available=need // 2)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: short)
    with pytest.raises(ContextTooLargeError, match="GiB of memory is free"):
        check_context_fits(model, 8192, 0)
    check_context_fits(model, 1024, 0)  # an eighth of it fits
