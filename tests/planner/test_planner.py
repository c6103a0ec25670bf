"""Planner choices over a table of machines and the file lists of real public GGUF repos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.gguf.info import ModelInfo
from core.gguf.reader import read_local
from core.planning.hardware import GpuInfo, HardwareProfile
from core.planning.memory_model import LoadConfig, predict
from core.planning.planner import Fit, PlanSettings, budgets, plan, synthesize

GiB = 1 << 30
DATA = json.loads((Path(__file__).parent / "data" / "repos.json").read_text())
L2_7B, L2_70B, L3_8B = ("TheBloke/Llama-2-7B-GGUF", "TheBloke/Llama-2-70B-GGUF",
                        "QuantFactory/Meta-Llama-3-8B-Instruct-GGUF")


def repo(repo_id: str) -> list[tuple[str, ModelInfo]]:
    r = DATA[repo_id]
    return [(name, synthesize(r["meta"], int(gb * 1e9), ftype, name))
            for name, (ftype, gb) in r["files"].items()]


def machine(ram_gib: float, gpu_total_gib: float = 0, gpu_free_gib: float | None = None
            ) -> HardwareProfile:
    gpus = []
    if gpu_total_gib:
        free = gpu_total_gib if gpu_free_gib is None else gpu_free_gib
        gpus = [GpuInfo(0, f"{gpu_total_gib:g} GiB GPU", int(gpu_total_gib * GiB),
                        int(free * GiB), int((gpu_total_gib - free) * GiB))]
    return HardwareProfile("test CPU", 8, 16, int(ram_gib * GiB), int(ram_gib * GiB), gpus,
                           gpu_offload_supported=bool(gpus), source="file")


PROFILES = {
    "cpu-8": machine(8), "cpu-16": machine(16), "cpu-64": machine(64),
    "gpu-4": machine(16, 4), "gpu-8": machine(16, 8), "gpu-12": machine(32, 12),
    "gpu-24": machine(64, 24), "gpu-80": machine(128, 80),
    "gpu-24-half-used": machine(64, 24, 12),
}


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("repo_id", [L2_7B, L2_70B, L3_8B])
def test_choice_is_highest_quality_that_fits(profile: str, repo_id: str) -> None:
    hw = PROFILES[profile]
    settings = PlanSettings(n_ctx=4096)
    result = plan(repo(repo_id), hw, settings)
    vram, ram = budgets(hw, settings)[:2]
    assert [f.bits_per_weight for f in result.files] == sorted(
        (f.bits_per_weight for f in result.files), reverse=True)
    for f in result.files:  # every verdict is consistent with its own prediction
        if f.fit is not Fit.TOO_LARGE:
            assert f.estimate.host_bytes <= ram and f.estimate.vram_bytes <= vram
        assert f.reason
    if result.chosen is None:
        assert all(f.fit is Fit.TOO_LARGE for f in result.files)
        return
    chosen = result.chosen
    # No better quant reaches the same (or a better) way of running.
    order = [Fit.GPU, Fit.PARTIAL, Fit.CPU]
    for f in result.files:
        if f.bits_per_weight > chosen.bits_per_weight and f.n_ctx >= chosen.n_ctx:
            assert order.index(f.fit if f.fit in order else Fit.CPU) >= order.index(chosen.fit)
    if not hw.gpus:
        assert chosen.fit is Fit.CPU and chosen.n_gpu_layers == 0


def test_seed_70b_int4_on_one_80gb_gpu() -> None:
    result = plan(repo(L2_70B), machine(128, 80), PlanSettings(n_ctx=4096))
    by_name = {f.label: f for f in result.files}
    q4 = by_name["llama-2-70b.Q4_K_M.gguf"]
    assert q4.fit is Fit.GPU and q4.n_gpu_layers == 81
    assert result.chosen.fit is Fit.GPU and result.chosen.bits_per_weight >= q4.bits_per_weight
    # ...and not on a 24 GiB card: there it is a partial offload at best.
    small = plan(repo(L2_70B), machine(64, 24), PlanSettings(n_ctx=4096))
    assert all(f.fit is not Fit.GPU for f in small.files)


def test_seed_7b_int4_on_8gb() -> None:
    result = plan(repo(L2_7B), machine(16, 8), PlanSettings(n_ctx=4096))
    by_name = {f.label: f for f in result.files}
    assert by_name["llama-2-7b.Q4_K_M.gguf"].fit is Fit.GPU
    assert by_name["llama-2-7b.Q8_0.gguf"].fit is not Fit.GPU
    assert result.chosen.fit is Fit.GPU and result.chosen.n_ctx == 4096
    assert 4.0 < result.chosen.bits_per_weight < 6.5


def test_other_programs_vram_is_not_ours() -> None:
    """24 GiB card, half used elsewhere: budget from free, not total (ollama #3765)."""
    empty = plan(repo(L3_8B), machine(64, 24), PlanSettings(n_ctx=4096))
    busy = plan(repo(L3_8B), machine(64, 24, 12), PlanSettings(n_ctx=4096))
    assert empty.chosen.label.endswith("f16.gguf") and empty.chosen.fit is Fit.GPU
    assert not busy.chosen.label.endswith("f16.gguf")
    assert busy.chosen.fit is Fit.GPU
    assert busy.chosen.estimate.vram_bytes <= 12 * GiB - 0.1 * 24 * GiB
    assert any("already in use" in n for n in busy.notes)


def test_headroom_is_a_setting() -> None:
    loose = plan(repo(L3_8B), machine(64, 8), PlanSettings(n_ctx=4096, max_vram_utilisation=1.0))
    tight = plan(repo(L3_8B), machine(64, 8), PlanSettings(n_ctx=4096, max_vram_utilisation=0.7))
    assert loose.chosen.bits_per_weight > tight.chosen.bits_per_weight


def test_context_shrinks_only_to_the_floor(default_model: Path) -> None:
    info = read_local(default_model)
    need_2k = predict(info, LoadConfig(n_ctx=2048)).host_bytes
    hw = machine(need_2k / 0.85 / GiB + 0.001)
    shrunk = plan([("m", info)], hw, PlanSettings(n_ctx=32768, ctx_floor=1024))
    assert shrunk.chosen.fit is Fit.CPU and shrunk.chosen.n_ctx < 32768
    assert "context reduced" in shrunk.chosen.reason
    floor = plan([("m", info)], machine(0.2), PlanSettings(n_ctx=32768, ctx_floor=16384))
    assert floor.chosen is None and floor.files[0].n_ctx == 16384


def test_draft_counts_against_the_budget(default_model: Path) -> None:
    info = read_local(default_model)
    alone = predict(info, LoadConfig(n_ctx=4096)).host_bytes
    hw = machine(alone * 1.5 / 0.85 / GiB)
    assert plan([("m", info)], hw, PlanSettings(n_ctx=4096, ctx_floor=4096)).chosen
    with_draft = plan([("m", info)], hw, PlanSettings(n_ctx=4096, ctx_floor=4096), draft=info)
    assert with_draft.chosen is None
    assert any("draft" in n for n in with_draft.notes)


def test_gpu_without_offload_support_plans_cpu() -> None:
    hw = machine(64, 24)
    hw.source, hw.gpu_offload_supported = "probe", False
    result = plan(repo(L3_8B), hw, PlanSettings(n_ctx=4096))
    assert result.vram_budget == 0 and result.chosen.fit is Fit.CPU
