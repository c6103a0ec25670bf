"""What the GPU check needs from the machine: an NVIDIA GPU and a CUDA toolkit that can build
ggml-cuda, each found without guessing.

The GPU comes from ``nvidia-smi --query-gpu=… --format=csv`` (parsed by its header, so the
column order and units never matter). The toolkit is nvcc plus what ggml-cuda links:
cuBLAS (``CUDA::cublas``) and, unless VMM is turned off, the driver library
(``CUDA::cuda_driver``). Those may live outside the toolkit — NVIDIA's pip wheels put cuBLAS
under ``site-packages/nvidia/cu13``; containers mount the driver under ``/usr/local/nvidia`` —
so each is looked for in the usual places and handed to CMake by path. Whatever is missing
is one :class:`Unmet` with the exit code the script ends with.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Exit codes of packaging/gpu-check.sh (documented in the README's GPU section).
EXIT_OK = 0
EXIT_GOALS_MISSED = 1
EXIT_USAGE = 2
EXIT_NO_GPU = 3
EXIT_NO_TOOLKIT = 4
EXIT_NO_SOURCES = 5
EXIT_BUILD_FAILED = 6

SMI_QUERY = "index,name,compute_cap,memory.total,driver_version"


class Unmet(Exception):
    """Something the run needs is missing; ``code`` is the script's exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi lists it."""

    index: int
    name: str
    compute_cap: str  # "9.0"
    memory_total_mib: int | None = None
    driver: str | None = None

    @property
    def arch(self) -> str:
        """The CMake CUDA architecture: "9.0" -> "90"."""
        return self.compute_cap.replace(".", "")


def _column(name: str) -> str:
    """'memory.total [MiB]' -> 'memory.total'."""
    return name.split("[", 1)[0].strip()


def _mib(value: str) -> int | None:
    match = re.match(r"\s*(\d+)", value)
    return int(match[1]) if match else None


def parse_smi_csv(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=... --format=csv`` output (header line first).
    Raises ValueError with nvidia-smi's own words when it printed an error instead."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or ("," not in lines[0] and _column(lines[0]) != "compute_cap"):
        raise ValueError(lines[0].strip() if lines else "nvidia-smi printed nothing")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    header = [_column(h) for h in rows[0]]
    if "compute_cap" not in header:
        raise ValueError(f"nvidia-smi gave no compute_cap column (columns: {', '.join(header)})")
    gpus = []
    for n, row in enumerate(rows[1:]):
        cell = dict(zip(header, (c.strip() for c in row), strict=False))
        cap = cell.get("compute_cap", "")
        if not re.fullmatch(r"\d+\.\d+", cap):
            raise ValueError(f"nvidia-smi gave {cap!r} as a compute capability")
        index = cell.get("index", "")
        gpus.append(Gpu(index=int(index) if index.isdigit() else n,
                        name=cell.get("name", "") or "NVIDIA GPU", compute_cap=cap,
                        memory_total_mib=_mib(cell.get("memory.total", "")),
                        driver=cell.get("driver_version") or None))
    return gpus


def cuda_architectures(gpus: Iterable[Gpu]) -> str:
    """CMAKE_CUDA_ARCHITECTURES for exactly these GPUs ("90", or "86;90")."""
    archs = sorted({g.arch for g in gpus}, key=int)
    if not archs:
        raise ValueError("no GPU to build for")
    return ";".join(archs)


def query_gpus(env: Mapping[str, str] | None = None) -> list[Gpu]:
    """The GPUs nvidia-smi lists, or :class:`Unmet` (EXIT_NO_GPU) saying why none."""
    env = dict(os.environ if env is None else env)
    smi = shutil.which("nvidia-smi", path=env.get("PATH", ""))
    if smi is None:
        raise Unmet(EXIT_NO_GPU, "no NVIDIA GPU: nvidia-smi is not on PATH (install the "
                                 "NVIDIA driver, or run this on a machine with a GPU)")
    proc = subprocess.run([smi, f"--query-gpu={SMI_QUERY}", "--format=csv"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    said = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0:
        first = said[0] if said else f"exit code {proc.returncode}"
        raise Unmet(EXIT_NO_GPU, f"no usable NVIDIA GPU: nvidia-smi failed ({first})")
    try:
        gpus = parse_smi_csv(proc.stdout)
    except ValueError as err:
        raise Unmet(EXIT_NO_GPU, f"no usable NVIDIA GPU: {err}") from None
    if not gpus:
        raise Unmet(EXIT_NO_GPU, "no NVIDIA GPU: nvidia-smi lists none")
    return gpus


@dataclass
class Toolkit:
    """A CUDA toolkit able to build ggml-cuda, and where its pieces were found."""

    nvcc: str
    version: str
    root: str
    cublas_lib: str
    cublas_include: str
    driver_lib: str | None  # None: build with GGML_CUDA_NO_VMM (no driver library to link)
    runtime_dirs: list[str] = field(default_factory=list)  # for LD_LIBRARY_PATH

    def cmake_args(self) -> list[str]:
        """Arguments that point CMake's FindCUDAToolkit at the pieces found elsewhere."""
        args = [f"-DCMAKE_CUDA_COMPILER={self.nvcc}", f"-DCUDAToolkit_ROOT={self.root}",
                f"-DCUDA_cublas_LIBRARY={self.cublas_lib}"]
        lt = Path(self.cublas_lib).with_name(Path(self.cublas_lib).name.replace("cublas",
                                                                                 "cublasLt"))
        if lt.is_file():
            args.append(f"-DCUDA_cublasLt_LIBRARY={lt}")
        if Path(self.cublas_include) != Path(self.root) / "include":
            flags = f"-I{self.cublas_include}"
            args += [f"-DCMAKE_CUDA_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]
        if self.driver_lib:
            args.append(f"-DCUDA_cuda_driver_LIBRARY={self.driver_lib}")
        else:
            args.append("-DGGML_CUDA_NO_VMM=ON")
        return args

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _first(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _libs(dirs: Iterable[Path], stem: str) -> Iterable[Path]:
    """lib<stem>.so, then any versioned lib<stem>.so.N, in each directory."""
    for d in dirs:
        yield d / f"lib{stem}.so"
        if d.is_dir():
            yield from sorted(d.glob(f"lib{stem}.so.[0-9]*"), reverse=True)


def _site_dirs(given: Iterable[str] | None) -> list[Path]:
    """Where NVIDIA's pip wheels may be: ``given``, or this interpreter's import path."""
    return [Path(p) for p in (sys.path if given is None else given) if p and Path(p).is_dir()]


def _toolkit_root(nvcc: str) -> Path:
    """The toolkit's top folder as nvcc itself reports it (``_HERE_`` in a dry run), so a
    wrapper script on PATH (``exec /usr/local/cuda-13.0/bin/nvcc``) leads to the real one."""
    proc = subprocess.run([nvcc, "-dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                          capture_output=True, text=True, timeout=60, check=False)
    here = re.search(r"^#\$ _HERE_=(.+)$", proc.stdout + proc.stderr, re.MULTILINE)
    return Path(here[1].strip()).parent if here else Path(nvcc).resolve().parent.parent


def find_toolkit(env: Mapping[str, str] | None = None,
                 site_dirs: Iterable[str] | None = None) -> Toolkit:
    """The CUDA toolkit, or :class:`Unmet` (EXIT_NO_TOOLKIT) naming the missing piece.
    ``site_dirs`` (default: ``sys.path``) is where NVIDIA's pip wheels are looked for."""
    env = dict(os.environ if env is None else env)
    nvcc = shutil.which("nvcc", path=env.get("PATH", ""))
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT"):
        if nvcc is None and env.get(var) and (Path(env[var]) / "bin" / "nvcc").is_file():
            nvcc = str(Path(env[var]) / "bin" / "nvcc")
    if nvcc is None:
        raise Unmet(EXIT_NO_TOOLKIT, "no CUDA toolkit: nvcc is not on PATH and CUDA_HOME is "
                                     "unset (install the CUDA toolkit or put its bin/ on PATH)")
    proc = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60,
                          check=False)
    release = re.search(r"release (\d+\.\d+)", proc.stdout)
    if proc.returncode != 0 or release is None:
        raise Unmet(EXIT_NO_TOOLKIT, f"no working CUDA toolkit: {nvcc} --version failed")
    root = _toolkit_root(nvcc)
    nvcc = str(root / "bin" / "nvcc") if (root / "bin" / "nvcc").is_file() else nvcc
    major = release[1].split(".")[0]
    tk_lib = [root / "lib64", root / "lib", root / "targets" / "x86_64-linux" / "lib"]
    tk_inc = [root / "include", root / "targets" / "x86_64-linux" / "include"]
    wheels = [d / "nvidia" / sub for d in _site_dirs(site_dirs)
              for sub in (f"cu{major}", "cublas")]
    cublas = _first(_libs([*tk_lib, *(w / "lib" for w in wheels)], "cublas"))
    header = _first(d / "cublas_v2.h" for d in [*tk_inc, *(w / "include" for w in wheels)])
    if cublas is None or header is None:
        piece = "library" if cublas is None else "header (cublas_v2.h)"
        raise Unmet(EXIT_NO_TOOLKIT, f"incomplete CUDA toolkit: no cuBLAS {piece} under {root} "
                                     "or in NVIDIA's pip wheels (install cuBLAS, e.g. "
                                     f"pip install nvidia-cublas-cu{major} or nvidia-cublas)")
    driver_dirs = [Path(p) for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    driver_dirs += [Path("/usr/local/nvidia/lib64"), Path("/usr/lib/x86_64-linux-gnu"),
                    Path("/usr/lib64"), *(d / "stubs" for d in tk_lib)]
    driver = _first(_libs(driver_dirs, "cuda"))
    runtime = sorted({str(cublas.parent), *(str(d) for d in tk_lib if d.is_dir())})
    return Toolkit(nvcc=nvcc, version=release[1], root=str(root), cublas_lib=str(cublas),
                   cublas_include=str(header.parent),
                   driver_lib=str(driver) if driver else None, runtime_dirs=runtime)


def find_build_tools(env: Mapping[str, str] | None = None) -> list[str]:
    """Folders holding cmake and ninja, to put first on the build's PATH: on PATH already,
    or inside the ``cmake`` / ``ninja`` pip packages (a CUDA image may have only those).
    No cmake is :class:`Unmet` (EXIT_NO_TOOLKIT); no ninja only slows the build."""
    path = dict(os.environ if env is None else env).get("PATH", "")
    dirs: list[str] = []
    for tool in ("cmake", "ninja"):
        found = shutil.which(tool, path=path)
        if found is None:
            try:
                module = __import__(tool)
                folder = getattr(module, "CMAKE_BIN_DIR", None) or getattr(module, "BIN_DIR", "")
            except ImportError:
                folder = ""
            candidate = Path(folder) / tool if folder else None
            found = str(candidate) if candidate and candidate.is_file() else None
        if found is None and tool == "cmake":
            raise Unmet(EXIT_NO_TOOLKIT, "no cmake: it is not on PATH nor installed for this "
                                         "Python (pip install cmake)")
        if found is not None and str(Path(found).parent) not in dirs:
            dirs.append(str(Path(found).parent))
    return dirs
