"""The build's bookkeeping without building: the plan, the reuse stamp, a step's failure
and time-out, and the checks' deadline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bench.gpu import build
from bench.gpu.context import CheckContext
from bench.gpu.run_checks import CHECKS, run_selected
from bench.gpu.toolkit import EXIT_BUILD_FAILED, Toolkit, Unmet


def _plan(tmp: Path, archs: str = "90", jobs: int = 16) -> build.BuildPlan:
    tk = Toolkit(nvcc="/opt/cuda/bin/nvcc", version="13.0", root="/opt/cuda",
                 cublas_lib="/opt/cuda/lib64/libcublas.so", cublas_include="/opt/cuda/include",
                 driver_lib="/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    return build.make_plan("0.3.36", archs, tmp / "s.tar.gz", tk, tmp, jobs)


def test_plan_builds_one_architecture_in_its_own_folders(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan.cmake_args[:3] == ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=90",
                                   "-DLLAVA_BUILD=OFF"]
    assert "-DCUDA_cuda_driver_LIBRARY=/usr/lib/x86_64-linux-gnu/libcuda.so.1" in plan.cmake_args
    assert "-DGGML_CUDA_NO_VMM=ON" not in plan.cmake_args
    assert "-DCMAKE_CUDA_FLAGS" not in " ".join(plan.cmake_args)  # cuBLAS is in the toolkit
    assert Path(plan.site_dir).name == "site-0.3.36-sm90"
    assert "--no-build-isolation" in plan.pip_command()
    assert plan.env()["CMAKE_BUILD_PARALLEL_LEVEL"] == "16"
    # one architecture on 16 cores stays inside the device budget; each more adds time
    assert plan.estimate_s() < 360 < _plan(tmp_path, "80;90").estimate_s()
    assert _plan(tmp_path, jobs=2).estimate_s() > 6 * plan.estimate_s() / 2


def _outputs(plan: build.BuildPlan) -> None:
    lib = Path(plan.site_dir) / "llama_cpp" / "lib"
    lib.mkdir(parents=True)
    (lib / "libggml-cuda.so").write_text("")
    for name in build.TOOLS:
        exe = Path(plan.build_dir) / "bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("")
        exe.chmod(0o755)


def test_a_finished_build_is_found_and_reused_only_for_the_same_inputs(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    _outputs(plan)
    tools = build.find_tools(Path(plan.build_dir))
    assert sorted(tools) == sorted(build.TOOLS)
    assert build.built(plan) is None  # no stamp yet
    stamp = {"key": plan.key, "tools": tools}
    (Path(plan.site_dir) / "hearth-gpu-build.json").write_text(json.dumps(stamp))
    assert build.built(plan) == stamp
    other = _plan(tmp_path)
    other.cmake_args = [*other.cmake_args, "-DGGML_CUDA_FA_ALL_QUANTS=ON"]
    assert build.built(other) is None
    os.remove(tools["llama-bench"])
    assert build.built(plan) is None


def test_a_failed_step_quotes_its_last_error(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    cmd = ["/bin/sh", "-c", "echo compiling; echo 'fatal error: cublas_v2.h: No such file'"
                            "; echo done; exit 3"]
    with pytest.raises(Unmet) as err:
        build.run_step("pip install llama-cpp-python", cmd, dict(os.environ), log)
    assert err.value.code == EXIT_BUILD_FAILED
    assert "(exit 3)" in str(err.value) and "fatal error: cublas_v2.h" in str(err.value)
    assert "compiling" in log.read_text()


def test_a_step_past_the_deadline_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    cmd = ["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    t0 = time.monotonic()
    with pytest.raises(Unmet, match="ran out of time"):
        build.run_step("ninja", cmd, dict(os.environ), tmp_path / "log",
                   deadline=time.time() + 1.5)
    assert time.monotonic() - t0 < 20
    child = Path(f"/proc/{int(pid_file.read_text())}/stat")
    time.sleep(0.2)
    # the grandchild went with the step: gone, or a zombie waiting for its new parent
    assert not child.exists() or child.read_text().split(")")[1].split()[0] == "Z"


def test_checks_that_no_longer_fit_are_skipped_and_say_how_to_run_them() -> None:
    state: dict = {"checks": [], "phases": []}
    saves: list[int] = []
    run_selected(["vram", "power"], CheckContext({}, {}, 1), state, time.time() + 5,
                 lambda: saves.append(1))
    assert [c["status"] for c in state["checks"]] == ["skipped", "skipped"]
    assert state["checks"][0]["reason"].endswith(f"~{CHECKS['vram'][2]} s; run it again "
                                                 "with --only vram")
    assert state["phases"] == [] and saves == []
