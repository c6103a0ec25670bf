"""llama.cpp's own tools (``llama-bench``, ``llama-batched-bench``, ``llama-server``,
``llama-perplexity``), built
from the sources the engine runs: the peers Hearth is measured against and tested with.

The installed llama-cpp-python was built from the llama.cpp it vendors in its sdist; this
module fetches that same sdist from the package index (pip download, cached under
``.cache/``), and builds only those targets with llama.cpp's default CMake
options — the same ones the wheel used (native CPU flags, OpenMP, llamafile kernels, CPU
repack) — plus whatever ``CMAKE_ARGS`` holds, as for the wheel (e.g. ``-DGGML_CUDA=on``).
The build is cached and never committed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".cache" / "llama-bench"


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def vendored_sources(pkg_version: str) -> Path:
    """The vendored llama.cpp of the llama-cpp-python ``pkg_version`` sdist, extracted (the
    sdist is fetched once and cached; bench/gpu builds the CUDA tools from it too)."""
    src_root = CACHE / f"llama_cpp_python-{pkg_version}"
    vendored = src_root / "vendor" / "llama.cpp"
    if (vendored / "CMakeLists.txt").is_file():
        return vendored
    dl = CACHE / "sdist"
    dl.mkdir(parents=True, exist_ok=True)
    archive = dl / f"llama_cpp_python-{pkg_version}.tar.gz"
    if not archive.is_file():
        _log(f"downloading the llama-cpp-python {pkg_version} sdist (its llama.cpp sources)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", "-d", str(dl),
                        f"llama-cpp-python=={pkg_version}"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    if not (vendored / "CMakeLists.txt").is_file():
        raise RuntimeError(f"no vendored llama.cpp in {archive}")
    return vendored


TOOLS = ("llama-bench", "llama-batched-bench", "llama-server", "llama-perplexity")


def ensure_tool(name: str) -> Path:
    """Path to a built llama.cpp tool (one of :data:`TOOLS`). The first call builds them all
    at once (they share ggml and llama: one build costs little more than one tool; a few
    minutes on 2 cores), later calls and later runs find them in the cache."""
    if name not in TOOLS:
        raise ValueError(f"unknown llama.cpp tool {name!r}; one of {', '.join(TOOLS)}")
    pkg_version = version("llama-cpp-python")
    build = CACHE / f"build-{pkg_version}"
    exe = build / "bin" / name
    if exe.is_file():
        return exe
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test sessions may ask at once
        if exe.is_file():
            return exe
        return _build(pkg_version, build, exe, name)


def _build(pkg_version: str, build: Path, exe: Path, name: str) -> Path:
    src = vendored_sources(pkg_version)
    _log(f"building {', '.join(TOOLS)} from llama.cpp vendored by llama-cpp-python "
         f"{pkg_version}")
    extra = shlex.split(os.environ.get("CMAKE_ARGS", ""))
    build.mkdir(parents=True, exist_ok=True)
    log = build / "build.log"
    jobs = str(os.cpu_count() or 2)
    steps = [
        ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON",
         "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", *extra],
        ["cmake", "--build", str(build), "--target", *TOOLS, "-j", jobs],
    ]
    with log.open("w") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(f"building {name} failed:\n" + "\n".join(tail))
    return exe


def ensure_llama_bench() -> Path:
    """Path to a built ``llama-bench``."""
    return ensure_tool("llama-bench")


@dataclass
class BenchResult:
    """One llama-bench test: mean and stddev of tokens per second over its repetitions."""

    n_prompt: int
    n_gen: int
    avg_ts: float
    stddev_ts: float
    samples_ts: list[float]


def run_llama_bench(exe: Path, model: Path, threads: int, n_prompt: int, n_gen: int,
                    reps: int) -> BenchResult:
    """Run one test (prefill of ``n_prompt`` or decode of ``n_gen`` tokens) ``reps`` times."""
    cmd = [str(exe), "-m", str(model), "-t", str(threads), "-p", str(n_prompt),
           "-n", str(n_gen), "-r", str(reps), "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)
    row = next(r for r in rows if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen)
    return BenchResult(n_prompt, n_gen, row["avg_ts"], row["stddev_ts"],
                       list(row.get("samples_ts", [])))


if __name__ == "__main__":  # `make tools`: build the peers once (set-up for tests and bench)
    for tool in TOOLS:
        print(ensure_tool(tool))
