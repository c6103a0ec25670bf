"""llama-cpp-python and llama.cpp's benchmark tools, with CUDA, for this machine's GPUs only.

The package is built the way the README tells users to (``CMAKE_ARGS="-DGGML_CUDA=on …"
pip install llama-cpp-python==<pin>``) from the pinned sdist, into a target folder of its
own so the CPU build in ``.venv`` stays as it is. Its build folder is kept
(scikit-build-core's ``build-dir``), and the two tools are then built from that same tree
(``LLAMA_BUILD_TOOLS=ON``, two targets): the CUDA kernels — nearly all of the time — are
compiled once, for one architecture, and the tools run exactly the code the engine loads.
A stamp records what was built; a second run with the same inputs skips the build.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.gpu.toolkit import EXIT_BUILD_FAILED, Toolkit, Unmet

TOOLS = ("llama-bench", "llama-batched-bench")
# Measured on 2 cores here for one architecture (sm_90): ggml-cuda is ~60 CPU-minutes of
# nvcc (144 files; the mmq and flash-attention instances dominate), the rest ~3.
CUDA_CPU_SECONDS = 3600.0
OTHER_CPU_SECONDS = 200.0


@dataclass
class BuildPlan:
    """Everything one build needs, and where its outputs go."""

    pkg_version: str
    archs: str  # "90"
    sources: str  # the sdist archive
    src_dir: str
    build_dir: str
    site_dir: str  # the package is installed here (PYTHONPATH for the checks)
    log: str
    jobs: int
    cmake_args: list[str]
    runtime_dirs: list[str] = field(default_factory=list)
    build_python_path: str = ""  # the kit's build backend, when this Python lacks one
    isolated: bool = False  # no build backend here: pip fetches one (needs the network)
    tool_dirs: list[str] = field(default_factory=list)  # cmake's and ninja's, first on PATH

    @property
    def key(self) -> dict[str, object]:
        """What the outputs depend on: a changed key means build again."""
        return {"version": self.pkg_version, "archs": self.archs, "sources": self.sources,
                "cmake_args": self.cmake_args}

    def estimate_s(self) -> float:
        """Seconds for the build: CPU work over the cores, plus configure and packaging."""
        n_archs = len(self.archs.split(";"))
        return round((CUDA_CPU_SECONDS * n_archs + OTHER_CPU_SECONDS) / max(1, self.jobs) + 45)

    def pip_command(self, python: str = sys.executable) -> list[str]:
        isolation = [] if self.isolated else ["--no-build-isolation"]
        return [python, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--upgrade",
                *isolation, "--target", self.site_dir,
                f"--config-settings=build-dir={self.build_dir}", "-v", self.src_dir]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CMAKE_ARGS"] = shlex.join(self.cmake_args)
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(self.jobs)
        env["PATH"] = os.pathsep.join([*self.tool_dirs, env.get("PATH", "")])
        if shutil.which("ninja", path=env["PATH"]):
            env["CMAKE_GENERATOR"] = "Ninja"
        if self.build_python_path:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.build_python_path, env.get("PYTHONPATH", "")) if p)
        return env

    def tool_commands(self) -> list[list[str]]:
        return [["cmake", "-S", self.src_dir, "-B", self.build_dir, "-DLLAMA_BUILD_TOOLS=ON",
                 "-DLLAMA_BUILD_SERVER=OFF"],
                ["cmake", "--build", self.build_dir, "--target", *TOOLS, "-j", str(self.jobs)]]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def make_plan(pkg_version: str, archs: str, sources: Path, toolkit: Toolkit, work: Path,
              jobs: int | None = None, build_python_path: str = "",
              isolated: bool = False, tool_dirs: list[str] | None = None) -> BuildPlan:
    tag = f"{pkg_version}-sm{archs.replace(';', '_')}"
    cmake_args = ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={archs}", "-DLLAVA_BUILD=OFF",
                  *toolkit.cmake_args(), *shlex.split(os.environ.get("CMAKE_ARGS", ""))]
    return BuildPlan(
        pkg_version=pkg_version, archs=archs, sources=str(sources),
        src_dir=str(work / "src" / f"llama_cpp_python-{pkg_version}"),
        build_dir=str(work / f"build-{tag}"), site_dir=str(work / f"site-{tag}"),
        log=str(work / f"build-{tag}.log"), jobs=jobs or os.cpu_count() or 2,
        cmake_args=cmake_args, runtime_dirs=list(toolkit.runtime_dirs),
        build_python_path=build_python_path, isolated=isolated, tool_dirs=tool_dirs or [])


def _stamp(plan: BuildPlan) -> Path:
    return Path(plan.site_dir) / "hearth-gpu-build.json"


def find_tools(build_dir: Path) -> dict[str, str]:
    """The built tool executables (llama.cpp puts them in bin/ or beside their sources)."""
    found: dict[str, str] = {}
    for name in TOOLS:
        hits = [p for p in build_dir.rglob(name) if p.is_file() and os.access(p, os.X_OK)]
        if hits:
            found[name] = str(min(hits, key=lambda p: len(p.parts)))
    return found


def built(plan: BuildPlan) -> dict[str, object] | None:
    """The stamp of an earlier build with the same key whose outputs are all there."""
    try:
        stamp = json.loads(_stamp(plan).read_text())
    except (OSError, ValueError):
        return None
    lib = Path(plan.site_dir) / "llama_cpp" / "lib" / "libggml-cuda.so"
    tools = stamp.get("tools", {})
    if stamp.get("key") != plan.key or not lib.is_file() or sorted(tools) != sorted(TOOLS):
        return None
    return stamp if all(Path(p).is_file() for p in tools.values()) else None


def run_step(step: str, cmd: list[str], env: dict[str, str], log: Path,
         deadline: float | None = None) -> None:
    """One build step, its output appended to ``log``; stopped at ``deadline`` (time.time())
    with the tree kept, so running again continues where it stopped."""
    timeout = None if deadline is None else max(1.0, deadline - time.time())
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n")
        out.flush()
        # Its own process group: on time-out, pip's cmake and ninja (and their nvcc jobs)
        # stop with it instead of compiling on as orphans.
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise Unmet(EXIT_BUILD_FAILED, f"the CUDA build ran out of time at {step}; its "
                                           f"tree is kept: run again to continue (log: {log})"
                        ) from None
        except BaseException:  # Ctrl-C: the group is not in the terminal's, stop it here
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if rc != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = [ln.strip() for ln in lines if "error" in ln.lower()][-1:] or lines[-1:]
        raise Unmet(EXIT_BUILD_FAILED, f"the CUDA build failed at {step} (exit {rc}); "
                                       f"log: {log}; last error: {' '.join(errors)[:300]}")


def build(plan: BuildPlan, say: Callable[[str], None] = print,
          deadline: float | None = None) -> dict[str, object]:
    """Build (or find built) the package and the tools; returns the stamp. ``deadline``
    (time.time()) stops a build that would run past it."""
    from bench.gpu.kit import extract

    done = built(plan)
    if done is not None:
        say(f"CUDA build for sm_{plan.archs} already in {plan.site_dir}: reused")
        return done
    t0 = time.monotonic()
    work = Path(plan.src_dir).parent.parent
    extract(Path(plan.sources), Path(plan.src_dir).parent)
    log = Path(plan.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"CUDA build of llama-cpp-python {plan.pkg_version} for sm_{plan.archs}\n"
                   f"CMAKE_ARGS={shlex.join(plan.cmake_args)}\n")
    env = plan.env()
    say(f"building llama-cpp-python {plan.pkg_version} with CUDA for sm_{plan.archs} on "
        f"{plan.jobs} cores (log: {log})")
    run_step("pip install llama-cpp-python", plan.pip_command(), env, log, deadline)
    t_pkg = time.monotonic() - t0
    say(f"llama-cpp-python built in {t_pkg:.0f} s; now {', '.join(TOOLS)} from the same tree")
    for cmd in plan.tool_commands():
        run_step(f"{' '.join(TOOLS)}", cmd, env, log, deadline)
    tools = find_tools(Path(plan.build_dir))
    missing = [t for t in TOOLS if t not in tools]
    if missing:
        raise Unmet(EXIT_BUILD_FAILED, f"the build ran but made no {', '.join(missing)} "
                                       f"under {plan.build_dir}")
    stamp = {"key": plan.key, "tools": tools, "package_seconds": round(t_pkg, 1),
             "seconds": round(time.monotonic() - t0, 1), "work": str(work),
             "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _stamp(plan).write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp
