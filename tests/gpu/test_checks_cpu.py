"""The checks' parts that run without a GPU, on the real (CPU) engine: the build check that
refuses a non-CUDA llama.cpp, the crash guard, the prefill timing, the batched hook and its
judging, and power's answer when NVML cannot be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from bench.gpu.checks_batched import (
    PARALLEL,
    BatchingUnavailable,
    hearth_aggregate_decode,
    judge_batched,
)
from bench.gpu.checks_power import power
from bench.gpu.checks_speed import off_gpu_reason, prefill_ttft_tok_s
from bench.gpu.context import CheckContext, model_tokens, random_prompt, timed
from bench.gpu.parse import aggregate_decode, parse_batched_bench
from bench.gpu.run_checks import verify_cuda_build
from core.engine import EngineConfig
from core.engine.process.client import EngineClient
from core.telemetry import detect_power
from tests.gpu.helpers import DATA
from tests.paths import REPO_ROOT


def test_the_checks_refuse_a_llama_cpp_that_is_not_the_cuda_build(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"checks": ["offload"], "work": str(tmp_path), "tools": {},
                               "site_dir": str(tmp_path / "site"), "threads": 1,
                               "results": str(results)}))
    proc = subprocess.run([sys.executable, "-m", "bench.gpu.run_checks", str(cfg)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, check=False)
    assert proc.returncode == 1
    state = json.loads(results.read_text())
    assert state["checks"] == []
    assert "not the CUDA build in" in state["error"]


def test_a_build_without_gpu_offload_is_named_as_such() -> None:
    if llama_cpp.llama_supports_gpu_offload():
        assert verify_cuda_build(None)["devices"]
    else:
        with pytest.raises(RuntimeError, match=r"offers no GPU \(offload=False"):
            verify_cuda_build(None)


def test_a_crashing_check_is_an_error_result_not_the_end() -> None:
    def broken_check(ctx: CheckContext) -> list:
        raise RuntimeError("llama-bench exited 1: CUDA error")

    [result] = timed(broken_check, CheckContext({}, {}, 1))
    assert (result.name, result.status) == ("broken-check", "error")
    assert result.reason == "RuntimeError: llama-bench exited 1: CUDA error"


def test_placement_off_the_gpu_is_caught() -> None:
    assert off_gpu_reason("NVIDIA H200 18/18 layers", "CUDA") == ""
    assert "Hearth ran on CPU" in off_gpu_reason("CPU", "CUDA")
    assert "llama-bench ran on CPU" in off_gpu_reason("NVIDIA H200 18/18 layers", "CPU")


def test_prompt_tokens_come_from_the_models_own_vocabulary(default_model: Path) -> None:
    bos, vocab = model_tokens(default_model)
    assert (bos, vocab) == (2, 262144)
    prompt = random_prompt(vocab, 64)
    assert prompt == random_prompt(vocab, 64) and all(1000 <= t < vocab for t in prompt)


def test_prefill_is_timed_to_the_first_token(default_model: Path) -> None:
    """On the CPU the engine's prefill clock and the time to first token agree (the CPU
    computes inside llama_decode); the check's figure is never the faster of the two."""
    _, vocab = model_tokens(default_model)
    with EngineClient() as client:
        client.load(EngineConfig(model_path=default_model, n_ctx=256, n_gpu_layers=0,
                                 n_threads=2))
        true_rate, engine_rate = prefill_ttft_tok_s(client, random_prompt(vocab, 64))
    assert 0 < true_rate <= engine_rate * 1.001
    assert true_rate > 0.5 * engine_rate


def _reference() -> dict[int, float]:
    rows = parse_batched_bench((DATA / "batched-bench-cpu.jsonl").read_text())
    ref = aggregate_decode(rows)
    return {n: ref.get(n, ref[max(ref)] * n / max(ref)) for n in PARALLEL}


def test_batching_not_in_this_build_is_reported_not_failed() -> None:
    def hook(n: int) -> float:
        raise BatchingUnavailable("not available in this build: EngineConfig has no n_seq_max")

    [result] = judge_batched(_reference(), hook, lambda _: None)
    assert result.status == "unavailable"
    assert result.reason.startswith("not available in this build")
    assert [r["Hearth tok/s"] for r in result.rows] == ["—"] * len(PARALLEL)


def test_batched_goal_is_judged_on_hearths_figures() -> None:
    rates = {1: 100.0, 2: 190.0, 4: 330.0, 8: 310.0, 16: 600.0, 32: 900.0}
    [result] = judge_batched(_reference(), rates.__getitem__, lambda _: None)
    assert result.status == "met" and "3.10× at 8" in result.figure
    slow = {**rates, 8: 290.0}
    [result] = judge_batched(_reference(), slow.__getitem__, lambda _: None)
    assert result.status == "not met"


def test_the_batching_hook_runs_on_this_build(default_model: Path) -> None:
    """The hook on the real engine (CPU, 2 sequences, a few tokens): until the batching
    engine lands it says it is not available; after, it measures a rate."""
    try:
        rate = hearth_aggregate_decode(default_model, 2, n_prompt=8, n_gen=8, n_threads=2)
    except BatchingUnavailable as why:
        assert str(why).startswith("not available in this build")
    else:
        assert rate > 0


def test_power_without_nvml_says_why(default_model: Path) -> None:
    ctx = CheckContext({"Q4_K_M": default_model}, {}, 1)
    [result] = power(ctx, detect_power(use_nvml=False))
    assert result.status == "error"
    assert result.reason == "NVML is not in use: NVML was turned off."


def test_vram_summary_names_the_context_size_the_measurements_imply() -> None:
    from bench.gpu.checks_vram import summarize_vram

    mib = 1 << 20
    # predicted with the 400 MiB guess; measured 200 MiB more each time
    rows = [{"predicted MiB": p, "measured MiB": p + 200.0} for p in (1200.0, 1500.0, 2500.0)]
    result = summarize_vram("vram", "VRAM", "±5%", rows, ["not met", "not met", "met"],
                            [-0.143, -0.118, -0.074], [600 * mib, 604 * mib, 596 * mib])
    assert result.status == "not met" and result.figure == "worst error -14.3%"
    assert result.reason.startswith("implied CUDA context 600 MiB (spread 8 MiB; the model "
                                    "assumes 400); with it, worst error 0.0%")
