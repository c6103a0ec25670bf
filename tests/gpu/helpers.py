"""Replay real nvidia-smi / nvcc output (tests/gpu/data) from executables on a PATH of
the test's own, so the GPU check's preflight runs on machines without a GPU or a toolkit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data"
CAT = shutil.which("cat") or "/bin/cat"  # absolute: the tests' PATH may hold nothing else


def replay(bin_dir: Path, name: str, fixture: str, rc: int = 0) -> Path:
    """``bin_dir/name`` prints ``fixture`` (from tests/gpu/data) and exits ``rc``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\n{CAT} '{DATA / fixture}'\nexit {rc}\n")
    exe.chmod(0o755)
    return exe


def fake_toolkit(root: Path) -> Path:
    """A toolkit folder whose ``bin/nvcc`` answers as CUDA 13.0's did (its dry run naming
    this folder as its home); returns the bin folder."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    dryrun = (DATA / "nvcc-dryrun.txt").read_text().replace("/usr/local/cuda-13.0", str(root))
    (root / "dryrun.txt").write_text(dryrun)
    nvcc = bin_dir / "nvcc"
    nvcc.write_text("#!/bin/sh\n"
                    f'case "$*" in *--version*) {CAT} \'{DATA / "nvcc-version.txt"}\' ;;\n'
                    f"  *-dryrun*) {CAT} '{root / 'dryrun.txt'}' >&2 ;;\n  *) exit 1 ;;\nesac\n")
    nvcc.chmod(0o755)
    return bin_dir


def cublas_wheel(site: Path) -> Path:
    """The layout NVIDIA's ``nvidia-cublas`` 13 wheel installs (nvidia/cu13/{include,lib});
    the files are empty: only their places are looked at."""
    (site / "nvidia" / "cu13" / "include").mkdir(parents=True, exist_ok=True)
    (site / "nvidia" / "cu13" / "lib").mkdir(parents=True, exist_ok=True)
    (site / "nvidia" / "cu13" / "include" / "cublas_v2.h").write_text("")
    (site / "nvidia" / "cu13" / "lib" / "libcublas.so.13").write_text("")
    (site / "nvidia" / "cu13" / "lib" / "libcublasLt.so.13").write_text("")
    return site


def minimal_path(bin_dir: Path, *tools: str) -> str:
    """A PATH of ``bin_dir`` plus links to the few system tools the check needs (the
    wrapper's ``dirname``, the build's cmake and ninja), so no real nvidia-smi or nvcc on
    this machine can be found."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("dirname", "cmake", "ninja", *tools):
        real = shutil.which(tool)
        if real and not (bin_dir / tool).exists():
            os.symlink(real, bin_dir / tool)
    return str(bin_dir)
