"""Hardware probe degradation, JSON profiles, and the CLI's error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from cli import main
from core.errors import ConfigError
from core.planning.hardware import HardwareProfile, manual_profile, parse_size, probe, probe_nvml
from tests.paths import REPO_ROOT


def _raiser(err: Exception):
    def fn(*_a: object) -> None:
        raise err
    return fn


def test_no_nvml_library_gives_cpu_profile_with_reason() -> None:
    missing = SimpleNamespace(nvmlInit=_raiser(
        pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)))
    hw = probe(nvml=missing, llama_probe=None)
    assert hw.gpus == [] and hw.ram_total_bytes > 0 and hw.logical_cores >= 1
    assert any("NVML could not start" in n and "Not Found" in n for n in hw.notes)


def test_real_pynvml_on_this_machine_degrades_cleanly() -> None:
    hw = probe()  # real pynvml and real llama.cpp device list
    assert any(d.type == "cpu" for d in hw.llama_devices)
    if not hw.gpus:
        assert hw.notes, "a CPU-only profile must say why"


def test_nvml_raising_while_listing_gives_cpu_profile() -> None:
    broken = SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "550.1",
        nvmlDeviceGetCount=_raiser(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)))
    gpus, reason = probe_nvml(broken)
    assert gpus == [] and "NVML failed while listing GPUs" in reason
    hw = probe(nvml=broken, llama_probe=None)
    assert hw.gpus == [] and reason in hw.notes


def test_profile_json_round_trip(tmp_path: Path) -> None:
    hw = probe(llama_probe=None)
    hw.save(tmp_path / "p.json")
    again = HardwareProfile.load(tmp_path / "p.json")
    again.source = hw.source
    assert again == hw
    gpu = manual_profile("8GiB", "16GiB")
    assert HardwareProfile.from_dict(json.loads(gpu.to_json())).gpus == gpu.gpus


def test_sizes() -> None:
    assert parse_size("8GiB") == 8 << 30 and parse_size("16 GB") == 16 * 10**9
    assert parse_size("512MiB") == 512 << 20 and parse_size("8G") == 8 << 30
    with pytest.raises(ConfigError, match="not a size"):
        parse_size("banana", "--vram")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_bad_vram_is_one_line(default_model: Path, capsys) -> None:
    code, _, err = run_cli(["plan", "--model", str(default_model), "--vram", "banana",
                            "--ram", "8GiB"], capsys)
    assert code == 1 and err.count("\n") == 1 and "banana" in err and "8GiB" in err


def test_cli_profile_missing_field_is_one_line(default_model: Path, tmp_path: Path,
                                               capsys) -> None:
    data = json.loads(manual_profile("8GiB", "16GiB").to_json())
    del data["ram_available_bytes"]
    (tmp_path / "hw.json").write_text(json.dumps(data))
    code, _, err = run_cli(["plan", "--model", str(default_model), "--hardware",
                            str(tmp_path / "hw.json")], capsys)
    assert code == 1 and err.count("\n") == 1 and "'ram_available_bytes'" in err


def test_cli_repo_without_gguf_is_one_line(mini_hub, tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no weights here")
    mini_hub.repos["someone/no-gguf"] = {"README.md": readme}
    code, _, err = run_cli(["plan", "--repo", "someone/no-gguf", "--vram", "8GiB",
                            "--ram", "16GiB"], capsys)
    assert code == 1 and err.count("\n") == 1 and "has no GGUF files" in err


def test_cli_plan_repo_reads_headers_remotely(mini_hub, model_variants, capsys) -> None:
    mini_hub.repos["google/gemma-3-270m-GGUF"] = {
        f"gemma-3-270m-{q}.gguf": p for q, p in model_variants.items()}
    code, out, _ = run_cli(["plan", "--repo", "google/gemma-3-270m-GGUF", "--vram", "0",
                            "--ram", "2GiB", "--ctx", "4096", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["chosen"] == "gemma-3-270m-F32.gguf"
    assert [f["file_type"] for f in result["files"]] == ["F32", "F16", "Q8_0", "Q4_K_M"]
    assert all(f["status"] == "CPU only" for f in result["files"])
    assert mini_hub.bytes_served < 4 * (12 << 20)  # headers only


def test_cli_plan_text_output_in_subprocess(default_model: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "plan", "--model", str(default_model),
         "--vram", "4GiB", "--ram", "16GiB", "--ctx", "8192"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "fits on GPU" in proc.stdout and "Chosen: gemma-3-270m-q4_k_m.gguf" in proc.stdout


def test_cli_quantize_refuses_imatrix_types_and_quantizes(default_model: Path, tmp_path: Path,
                                                          capsys) -> None:
    code, _, err = run_cli(["quantize", str(default_model), str(tmp_path / "x.gguf"),
                            "--type", "IQ2_XXS"], capsys)
    assert code == 1 and "importance matrix" in err and not (tmp_path / "x.gguf").exists()
    code, _, err = run_cli(["quantize", str(default_model), str(tmp_path / "x.gguf"),
                            "--type", "Q8_0"], capsys)
    assert code == 1 and "already quantized" in err
    code, _out, err = run_cli(["quantize", str(default_model), str(tmp_path / "x.gguf"),
                              "--type", "Q5_K_M", "--allow-requantize"], capsys)
    assert code == 0 and "236/236 tensors" in err
    from core.gguf.reader import read_local
    assert read_local(tmp_path / "x.gguf").file_type_name == "Q5_K_M"
    assert not list(tmp_path.glob(".*.part"))
