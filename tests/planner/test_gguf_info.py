"""GGUF headers read by llama.cpp's reader: local files and remote range reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ModelFileError
from core.gguf.reader import read_local
from core.models.hub.remote_header import read_remote


def test_local_header_describes_gemma3(default_model: Path) -> None:
    info = read_local(default_model)
    assert info.architecture == "gemma3"
    assert (info.n_layer, info.n_embd, info.n_head, info.n_ff) == (18, 640, 4, 2048)
    assert info.n_head_kv == [1] * 18
    assert (info.n_embd_head_k, info.n_embd_head_v) == (256, 256)
    assert info.n_ctx_train == 32768 and info.n_swa == 512
    # llama.cpp's Gemma 3 default pattern 6: every sixth layer has full attention.
    assert [il for il, swa in enumerate(info.swa_layers) if not swa] == [5, 11, 17]
    assert info.vocab_size == 262144
    assert info.file_type_name == "Q4_K_M"
    assert info.tensor("output.weight") is None  # tied head
    emb = info.tensor("token_embd.weight")
    assert emb is not None and emb.type == "Q8_0" and emb.shape == (640, 262144)
    # Per-layer bytes come from tensors: layers differ (Q4_K vs Q6_K ffn_down).
    sizes = info.layer_bytes()
    assert len(set(sizes)) > 1
    non_repeating = sum(t.n_bytes for t in info.tensors if t.layer is None)
    assert sum(sizes) + non_repeating == info.tensor_bytes
    assert info.file_size - (8 << 20) < info.tensor_bytes < info.file_size
    assert 7.0 < info.bits_per_weight < 7.6


def test_variants_have_their_types(model_variants: dict[str, Path]) -> None:
    names = {q: read_local(p).file_type_name for q, p in model_variants.items()}
    assert names == {"Q4_K_M": "Q4_K_M", "Q8_0": "Q8_0", "F16": "F16", "F32": "F32"}
    bpw = [read_local(model_variants[q]).bits_per_weight for q in ("Q4_K_M", "Q8_0", "F16", "F32")]
    assert bpw == sorted(bpw)
    assert abs(bpw[-1] - 32.0) < 0.01


def test_not_a_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelFileError, match="not a readable GGUF"):
        read_local(bad)
    with pytest.raises(ModelFileError, match="check the path"):
        read_local(tmp_path / "missing.gguf")


def test_truncated_header_is_a_clear_error(default_model: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with default_model.open("rb") as fh:
        cut.write_bytes(fh.read(1 << 20))  # header is ~6 MiB (the vocabulary)
    with pytest.raises(ModelFileError):
        read_local(cut)


def test_remote_header_by_range_requests(default_model: Path, mini_hub) -> None:
    mini_hub.repos["google/gemma-test"] = {"model.gguf": default_model}
    url = f"{mini_hub.url}/google/gemma-test/resolve/main/model.gguf"
    remote = read_remote(url)
    local = read_local(default_model)
    assert remote.tensors == local.tensors
    assert (remote.n_layer, remote.swa_layers, remote.vocab_size) == (
        local.n_layer, local.swa_layers, local.vocab_size)
    assert remote.file_size == default_model.stat().st_size
    # Only the header travelled: a few MiB of a 241 MiB file.
    assert mini_hub.bytes_served < 12 << 20
    assert remote.metadata["_bytes_fetched"] == mini_hub.bytes_served


def test_remote_server_without_range_support_still_works(default_model: Path, mini_hub) -> None:
    mini_hub.honour_range = False
    mini_hub.repos["a/b"] = {"m.gguf": default_model}
    info = read_remote(f"{mini_hub.url}/a/b/resolve/main/m.gguf", block=64 << 20)
    assert info.n_layer == 18
