"""The memory model: llama.cpp's formulas, and predictions checked against real loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.gguf.reader import read_local
from core.planning.memory_model import (
    LoadConfig,
    gpu_layer_range,
    kv_cache_bytes,
    measure_host_memory,
    predict,
)

MiB = 1 << 20


def test_kv_cache_matches_llama_cpp_log(default_model: Path) -> None:
    info = read_local(default_model)
    # Values llama.cpp logs for this model ("llama_kv_cache: size = ..."): 3 full layers of
    # n_ctx cells and 15 SWA layers of pad256(min(n_ctx, n_swa + n_ubatch)) cells, f16.
    for n_ctx, full, swa in ((512, 1.5, 7.5), (4096, 12.0, 15.0), (32768, 96.0, 15.0)):
        per_layer, padded, _swa_cells = kv_cache_bytes(info, LoadConfig(n_ctx=n_ctx))
        full_b = sum(b for b, s in zip(per_layer, info.swa_layers, strict=True) if not s)
        swa_b = sum(b for b, s in zip(per_layer, info.swa_layers, strict=True) if s)
        assert (full_b / MiB, swa_b / MiB) == (full, swa)
    per_layer, padded, _ = kv_cache_bytes(info, LoadConfig(n_ctx=1000, swa_full=True))
    assert padded == 1024 and sum(per_layer) == 18 * 1024 * 1024
    q8 = sum(kv_cache_bytes(info, LoadConfig(n_ctx=4096, type_k="Q8_0", type_v="Q8_0"))[0])
    assert q8 == int(27 * MiB * 34 / 64)


def test_gpu_layer_assignment_follows_llama_cpp() -> None:
    assert gpu_layer_range(32, 0) == (0, False)
    assert gpu_layer_range(32, 1) == (0, True)  # the head is offloaded first
    assert gpu_layer_range(32, 10) == (9, True)
    assert gpu_layer_range(32, 32) == (31, True)
    assert gpu_layer_range(32, 33) == (32, True)  # all: n_layer + 1
    assert gpu_layer_range(32, -1) == (32, True)


def test_offload_moves_weights_and_kv_to_vram(default_model: Path) -> None:
    info = read_local(default_model)
    cpu = predict(info, LoadConfig(n_ctx=4096))
    half = predict(info, LoadConfig(n_ctx=4096, n_gpu_layers=9))
    full = predict(info, LoadConfig(n_ctx=4096, n_gpu_layers=-1))
    assert cpu.vram_bytes == 0
    assert 0 < half.vram_bytes < full.vram_bytes
    assert full.host_bytes < half.host_bytes < cpu.host_bytes
    layers = info.layer_bytes()
    # Tied head: token_embd stays on the CPU and a copy goes to the GPU with the output
    # layer (which also holds output_norm, 640 f32). llama.cpp offloads the head first:
    # 9 "layers" are the head and the last 8 of the 18 repeating ones.
    emb = info.tensor("token_embd.weight").n_bytes
    assert half.parts["weights"][1] == sum(layers[10:]) + emb + 640 * 4
    assert full.parts["weights"] == (emb, sum(layers) + emb + 640 * 4)


def test_draft_model_is_inside_the_estimate(default_model: Path) -> None:
    info = read_local(default_model)
    alone = predict(info, LoadConfig(n_ctx=4096))
    both = predict(info, LoadConfig(n_ctx=4096), draft=info)
    assert both.host_bytes == 2 * alone.host_bytes
    assert "draft model" in both.parts


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q8_0"])
@pytest.mark.parametrize("n_ctx", [512, 4096])
def test_prediction_within_10_percent_of_measured_rss(
    model_variants: dict[str, Path], qtype: str, n_ctx: int
) -> None:
    path = model_variants[qtype]
    predicted = predict(read_local(path), LoadConfig(n_ctx=n_ctx)).host_bytes
    measured = measure_host_memory(path, n_ctx)
    assert measured["rc"] == 0
    error = predicted / measured["increase"] - 1
    assert abs(error) <= 0.10, f"{qtype} n_ctx={n_ctx}: {predicted=} {measured=} {error=:+.1%}"
