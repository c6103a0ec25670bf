"""The offline kit: trimmed sources, the wheels a bare image lacks, the model's header and
the synthetic model made from it (memory-identical to the real one)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench.gpu import kit, synth
from bench.gpu.toolkit import EXIT_NO_SOURCES, Unmet
from core.gguf.reader import read_local
from core.planning.memory_model import LoadConfig, predict

TOP = "llama_cpp_python-0.3.36"


def _sdist(path: Path) -> Path:
    """An archive laid out as the llama-cpp-python sdist is (folders from its listing)."""
    files = {f"{TOP}/.git/HEAD": "ref", f"{TOP}/llama_cpp/__init__.py": "__version__ = 1",
             f"{TOP}/CMakeLists.txt": "project(llama_cpp)",
             f"{TOP}/vendor/llama.cpp/CMakeLists.txt": "project(llama.cpp)",
             f"{TOP}/vendor/llama.cpp/models/ggml-vocab-bert.gguf": "x" * 1000,
             f"{TOP}/vendor/llama.cpp/docs/build.md": "docs",
             f"{TOP}/vendor/llama.cpp/ggml/src/ggml.c": "int x;",
             f"{TOP}/vendor/llama.cpp/modelsx/keep.txt": "not the models folder"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_trimmed_sources_keep_every_file_a_build_reads(tmp_path: Path) -> None:
    src = _sdist(tmp_path / "full.tar.gz")
    out = tmp_path / "kit" / "trimmed.tar.gz"
    manifest = kit.trim_sdist(src, out)
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(f"{TOP}/{p}" for p in (
        "llama_cpp/__init__.py", "CMakeLists.txt", "vendor/llama.cpp/CMakeLists.txt",
        "vendor/llama.cpp/ggml/src/ggml.c", "vendor/llama.cpp/modelsx/keep.txt"))
    assert manifest["files_kept"] == 5 and manifest["files_dropped"] == 3
    assert manifest["sdist_sha256"] == kit.sha256(src)
    assert manifest["trimmed_sha256"] == kit.sha256(out)
    root = kit.extract(out, tmp_path / "src")
    assert root == tmp_path / "src" / TOP
    assert (root / "vendor" / "llama.cpp" / "ggml" / "src" / "ggml.c").read_text() == "int x;"
    assert kit.extract(out, tmp_path / "src") == root  # a second time: already there


def test_sources_that_hold_no_llama_cpp_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo(f"{TOP}/README.md")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(Unmet) as err:
        kit.extract(bad, tmp_path / "src")
    assert err.value.code == EXIT_NO_SOURCES


def test_the_kits_sources_come_first(tmp_path: Path) -> None:
    trimmed = tmp_path / "sources" / "llama_cpp_python-9.9.9-trimmed.tar.gz"
    trimmed.parent.mkdir()
    trimmed.write_bytes(b"")
    assert kit.find_sdist("9.9.9", tmp_path) == trimmed
    with pytest.raises(Unmet, match=r"run `packaging/gpu-check\.sh prepare`"):
        kit.find_sdist("9.9.8", tmp_path)


def test_pinned_version_is_pyprojects() -> None:
    text = (kit.REPO_ROOT / "pyproject.toml").read_text()
    assert f'"llama-cpp-python=={kit.pinned_version()}"' in text


def _wheel(folder: Path, dist: str, module: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{module}/__init__.py", "VALUE = 1\n")
    return path


def test_only_wheels_this_python_lacks_are_unpacked(tmp_path: Path) -> None:
    _wheel(tmp_path / "kit" / "wheels", "platformdirs", "platformdirs")  # installed here
    _wheel(tmp_path / "kit" / "wheels", "scikit-build-core", "scikit_build_core")
    _wheel(tmp_path / "kit" / "wheels", "unrelated", "unrelated")  # not one of ours
    added = kit.install_pure_deps(tmp_path / "kit", tmp_path / "pydeps")
    assert added == ["scikit-build-core"]
    assert sorted(p.name for p in (tmp_path / "pydeps").iterdir()) == ["scikit_build_core"]


@pytest.fixture(scope="module")
def header(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit") / kit.HEADER_NAME
    info = synth.write_header(default_model, out)
    assert info["tensors"] == len(read_local(default_model).tensors)
    return out


def test_the_header_is_small_enough_to_carry(header: Path) -> None:
    assert header.stat().st_size < 8 << 20  # the vocabulary is most of it


@pytest.mark.slow
def test_synthetic_model_is_memory_identical_and_runs(
        header: Path, model_variants: dict[str, Path], tmp_path: Path) -> None:
    """The synthetic F16 has the real F16's shapes, vocabulary and hence its predicted
    memory on CPU and GPU, and llama.cpp loads and runs it."""
    from core.engine import Engine, EngineConfig, GenerationRequest

    made = synth.synthesize(header, tmp_path / "synthetic-f16.gguf")
    fake, real = read_local(made), read_local(model_variants["F16"])
    assert [(t.name, t.shape, t.type) for t in fake.tensors] == [
        (t.name, t.shape, t.type) for t in real.tensors]
    assert (fake.vocab_size, fake.n_layer, fake.n_swa, fake.n_ctx_train) == (
        real.vocab_size, real.n_layer, real.n_swa, real.n_ctx_train)
    for cfg in (LoadConfig(n_ctx=4096), LoadConfig(n_ctx=32768, n_gpu_layers=-1)):
        a, b = predict(fake, cfg, gpu_present=True), predict(real, cfg, gpu_present=True)
        assert (a.host_bytes, a.vram_bytes) == (b.host_bytes, b.vram_bytes)
    assert synth.synthesize(header, made) == made  # kept, not rewritten
    with Engine(EngineConfig(model_path=made, n_ctx=64, n_gpu_layers=0)) as engine:
        *_, done = engine.generate(GenerationRequest(prompt="Hi", max_tokens=4,
                                                     ignore_eos=True))
    assert done.metrics.decode_tokens == 4  # type: ignore[union-attr]


def test_a_file_that_is_not_a_header_is_refused(tmp_path: Path) -> None:
    from gguf import GGUFWriter

    plain = tmp_path / "plain.gguf"
    writer = GGUFWriter(plain, "llama")
    writer.add_uint32("llama.block_count", 2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"not a model header made by `gpu-check\.sh prepare`"):
        synth.synthesize(plain, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
