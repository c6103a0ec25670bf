"""packaging/gpu-check.sh as a user runs it: without a GPU or a toolkit it says so in one
line and exits with its code; with them (replayed) it plans the build for exactly the
GPUs nvidia-smi lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu.toolkit import EXIT_NO_GPU, EXIT_NO_SOURCES, EXIT_NO_TOOLKIT, EXIT_USAGE
from tests.gpu.helpers import cublas_wheel, fake_toolkit, minimal_path, replay
from tests.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "packaging" / "gpu-check.sh"


def run(args: list[str], path: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": path, "PYTHON": sys.executable, "HOME": str(tmp),
            "PYTHONPATH": env.pop("PYTHONPATH", ""), **env}
    return subprocess.run(["/bin/sh", str(SCRIPT), *args, "--work", str(tmp / "work"),
                           "--kit", str(tmp / "no-kit")], env=full, capture_output=True,
                          text=True, timeout=120, check=False)


def test_without_nvidia_smi_one_line_and_exit_3(tmp_path: Path) -> None:
    proc = run([], minimal_path(tmp_path / "bin"), tmp_path)
    assert proc.returncode == EXIT_NO_GPU
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("gpu-check: no NVIDIA GPU: nvidia-smi is not on PATH")


def test_with_a_gpu_but_no_nvcc_one_line_and_exit_4(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    replay(bin_dir, "nvidia-smi", "smi-two-gpus.csv")
    proc = run(["--dry-run"], minimal_path(bin_dir), tmp_path)
    assert proc.returncode == EXIT_NO_TOOLKIT
    assert proc.stderr.count("\n") == 1 and "no CUDA toolkit: nvcc is not on PATH" in proc.stderr


def test_a_driver_that_does_not_answer_is_no_gpu(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    replay(bin_dir, "nvidia-smi", "smi-no-driver.txt", rc=9)
    proc = run([], minimal_path(bin_dir), tmp_path)
    assert proc.returncode == EXIT_NO_GPU and "couldn't communicate" in proc.stderr


def _gpu_machine(tmp: Path) -> tuple[str, dict[str, str]]:
    bin_dir = tmp / "bin"
    replay(bin_dir, "nvidia-smi", "smi-two-gpus.csv")
    cuda = fake_toolkit(tmp / "cuda")
    site = cublas_wheel(tmp / "site")
    return f"{minimal_path(bin_dir)}{os.pathsep}{cuda}", {"PYTHONPATH": str(site)}


def test_dry_run_plans_a_build_for_exactly_these_gpus(tmp_path: Path) -> None:
    path, env = _gpu_machine(tmp_path)
    sources = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    sources.write_bytes(b"")
    proc = run(["--dry-run", "--sources", str(sources), "--jobs", "16", "--only",
                "offload,vram"], path, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [g["arch"] for g in plan["machine"]["gpus"]] == ["70", "89"]
    assert "'-DCMAKE_CUDA_ARCHITECTURES=70;89'" in plan["CMAKE_ARGS"]
    assert "-DGGML_CUDA=on" in plan["CMAKE_ARGS"] and "-DLLAVA_BUILD=OFF" in plan["CMAKE_ARGS"]
    assert "-DCUDA_cublas_LIBRARY=" in plan["CMAKE_ARGS"]
    pip = plan["pip"]
    assert pip[pip.index("--target") + 1] == plan["plan"]["site_dir"]
    assert f"--config-settings=build-dir={plan['plan']['build_dir']}" in pip
    assert plan["tools"][1][-4:-2] == ["llama-bench", "llama-batched-bench"]
    names = [p["name"] for p in plan["phases"]]
    assert names == ["preflight", "build", "models", "check offload", "check vram"]
    build_s = plan["phases"][1]["estimate_s"]
    assert 60 < build_s < 1200  # two architectures on 16 cores: minutes, not an hour
    for p in plan["phases"]:
        assert f"{p['name']:<16} est. ~" in proc.stderr  # every phase's estimate is shown
    assert not (tmp_path / "work" / "src").exists()  # a dry run builds nothing


def test_the_arch_can_be_given(tmp_path: Path) -> None:
    path, env = _gpu_machine(tmp_path)
    sources = tmp_path / "s.tar.gz"
    sources.write_bytes(b"")
    proc = run(["--dry-run", "--sources", str(sources), "--arch", "9.0"], path, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["plan"]["archs"] == "90"


def test_missing_sources_exit_5(tmp_path: Path) -> None:
    path, env = _gpu_machine(tmp_path)
    proc = run(["--sources", str(tmp_path / "nowhere.tar.gz")], path, tmp_path, **env)
    assert proc.returncode == EXIT_NO_SOURCES and "no sources at" in proc.stderr


@pytest.mark.parametrize("args", [["--only", "speed"], ["--reps", "0"], ["launch"]])
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    proc = run(args, minimal_path(tmp_path / "bin"), tmp_path)
    assert proc.returncode == EXIT_USAGE and "usage: gpu-check.sh" in proc.stderr


def test_a_finished_build_is_reused_and_a_non_cuda_llama_cpp_is_reported(tmp_path: Path) -> None:
    """The whole run after the build: the plan's build found done (its stamp), the checks'
    process started with that build first on its path — here the project's CPU
    llama-cpp-python answers instead — and the report written and printed anyway."""
    path, env = _gpu_machine(tmp_path)
    sources = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    sources.write_bytes(b"")
    args = ["--sources", str(sources), "--only", "offload", "--out", str(tmp_path / "out")]
    plan = json.loads(run(["--dry-run", *args], path, tmp_path, **env).stdout)["plan"]
    site, build_dir = Path(plan["site_dir"]), Path(plan["build_dir"])
    (site / "llama_cpp" / "lib").mkdir(parents=True)
    (site / "llama_cpp" / "lib" / "libggml-cuda.so").write_text("")
    tools = {}
    for name in ("llama-bench", "llama-batched-bench"):
        exe = build_dir / "bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\nexit 1\n")
        exe.chmod(0o755)
        tools[name] = str(exe)
    key = {k: plan[k] for k in ("cmake_args", "sources")} | {
        "version": plan["pkg_version"], "archs": plan["archs"]}
    (site / "hearth-gpu-build.json").write_text(json.dumps({"key": key, "tools": tools}))

    proc = run(args, path, tmp_path, **env)
    assert proc.returncode == 1, proc.stderr
    assert "already in" in proc.stderr and "reused" in proc.stderr
    assert "| checks set-up |  |  | error | RuntimeError: imported llama_cpp from" in proc.stdout
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(out) == 2 and out[0].endswith(".json") and out[1].endswith(".md")
    report = json.loads((tmp_path / "out" / out[0]).read_text())
    assert report["build"]["stamp"]["tools"] == tools
    assert [p["name"] for p in report["phases"]] == ["preflight", "build"]
    assert report["summary"] == {"error": 1}
