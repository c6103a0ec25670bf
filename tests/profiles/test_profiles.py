"""Profiles made concrete: the seed's four rows differ where it says, measured figures win."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cli import main
from core.errors import ConfigError
from core.gguf.reader import read_local
from core.models.library import Library
from core.planning.hardware import manual_profile
from core.planning.measured import Measurement, MeasurementStore, file_key
from core.planning.profiles import BUILTINS, Profile, all_profiles, library_candidates, plan_profile
from core.settings import Settings, load_settings, save_settings

NAMES = ["real-time-chat", "bulk-processing", "cost-sensitive", "high-quality"]
GPU_BOX = manual_profile("8GiB", "16GiB")  # a machine with one 8 GiB GPU
CPU_BOX = manual_profile("0", "16GiB")


@pytest.fixture(scope="module")
def variants(model_variants: dict[str, Path]) -> list[tuple[str, object]]:
    return [(p.name, read_local(p)) for p in model_variants.values()]


def _library(tmp_path: Path, default_model: Path) -> Library:
    return Library(hf_cache=tmp_path / "hf", ollama_roots=[], lmstudio_roots=[],
                   imported_dir=tmp_path / "imported", default_model=lambda: default_model)


@pytest.mark.parametrize("name", NAMES)
def test_each_builtin_plans_the_default_model_with_reasons(name, default_model, tmp_path):
    candidates = library_candidates(_library(tmp_path, default_model))
    result = plan_profile(BUILTINS[name], candidates, CPU_BOX)
    assert result.chosen is not None and result.path == str(default_model.resolve())
    assert result.parallel == BUILTINS[name].parallel
    assert result.n_ctx == result.n_ctx_per_seq * result.parallel <= 32768
    assert result.n_gpu_layers == 0 and result.placement == "CPU"
    assert len(result.reasons) >= 2 and all(isinstance(r, str) and r for r in result.reasons)
    data = result.to_dict()
    assert data["parallel"] == BUILTINS[name].parallel and data["chosen"] == default_model.name
    if BUILTINS[name].precision != "INT4":  # only a Q4_K_M here: the reason says what to do
        assert any("nearest" in r and "hearth-cli quantize" in r for r in result.reasons)


def test_the_four_differ_where_the_seed_says(variants) -> None:
    plans = {n: plan_profile(BUILTINS[n], variants, GPU_BOX) for n in NAMES}
    assert [plans[n].parallel for n in NAMES] == [1, 16, 4, 2]
    chosen = {n: plans[n].chosen.info.file_type_name for n in NAMES}
    assert chosen == {"real-time-chat": "Q4_K_M", "bulk-processing": "Q8_0",
                      "cost-sensitive": "Q4_K_M", "high-quality": "F16"}
    assert plans["cost-sensitive"].n_gpu_layers == 0  # the seed's CPU row, GPU or not
    assert plans["real-time-chat"].placement.startswith("GPU")
    assert plans["high-quality"].speculation == "twin"  # F16: its Q4 twin drafts
    assert plans["real-time-chat"].speculation == "lookup"  # a Q4 has no smaller twin
    assert plans["bulk-processing"].sampling["preset"] == "greedy"
    assert plans["bulk-processing"].n_ctx == 16 * plans["bulk-processing"].n_ctx_per_seq


def test_measured_figures_beat_the_precision_preference(variants, model_variants) -> None:
    def row(q: str, tok_s: float, same: float) -> Measurement:
        key = file_key(model_variants[q])
        return Measurement(*key, file=model_variants[q].name, quant=q, decode_tok_s=tok_s,
                           same_top_pct=same, kl_mean=(100 - same) / 1000, reference="F32")

    profile = BUILTINS["real-time-chat"]
    predicted = plan_profile(profile, variants, GPU_BOX)
    assert predicted.basis == "predicted" and predicted.chosen.info.file_type_name == "Q4_K_M"
    # Measured here: the Q4_K_M misses the 95 % target, the Q8_0 meets it and is fast.
    measured = {r.path: r for r in (row("Q4_K_M", 90.0, 93.0), row("Q8_0", 70.0, 98.5))}
    result = plan_profile(profile, variants, GPU_BOX, measured)
    assert result.basis == "measured" and result.chosen.info.file_type_name == "Q8_0"
    assert result.measured is not None and result.measured.decode_tok_s == 70.0
    assert any("measured here" in r for r in result.reasons)
    # Both meet it: the fastest wins.
    measured = {r.path: r for r in (row("Q4_K_M", 90.0, 96.0), row("Q8_0", 70.0, 98.5))}
    assert plan_profile(profile, variants, GPU_BOX, measured).chosen.info.file_type_name \
        == "Q4_K_M"


def test_user_profiles_live_in_the_settings(tmp_path: Path) -> None:
    mine = replace(BUILTINS["cost-sensitive"], name="night-batch", title="Night batch",
                   parallel=8, builtin=False).to_dict()
    settings = Settings(profiles=[mine], chat_profile="night-batch",
                        chat_profiles={"3": "high-quality"})
    save_settings(settings)
    loaded = load_settings()
    assert loaded.all_profiles()["night-batch"].parallel == 8
    assert loaded.profile_for_chat(3) == "high-quality"
    assert loaded.profile_for_chat(4) == "night-batch"
    with pytest.raises(ConfigError, match="built-in"):
        all_profiles([BUILTINS["high-quality"].to_dict()])
    with pytest.raises(ConfigError, match="parallel"):
        Profile.from_dict({"name": "x1", "parallel": 0})
    with pytest.raises(ConfigError, match="Unknown profile field"):
        Profile.from_dict({"name": "x1", "batch": 4})
    with pytest.raises(ConfigError, match="Unknown profile"):
        Settings(server_profile="nope").validate()


def test_cli_plan_profile_json_and_errors(default_model, capsys) -> None:
    code = main(["plan", "--profile", "bulk-processing", "--model", str(default_model),
                 "--vram", "0", "--ram", "8GiB", "--json"])
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert code == 0 and data["parallel"] == 16 and data["profile"] == "bulk-processing"
    assert data["chosen"] == default_model.name and data["reasons"]
    code = main(["plan", "--profile", "fastest", "--model", str(default_model)])
    _, err = capsys.readouterr()
    assert code == 1 and "Unknown profile 'fastest'" in err and err.count("\n") == 1
    assert main(["plan", "--profiles", "--json"]) == 0
    listed = json.loads(capsys.readouterr()[0])
    assert [p["name"] for p in listed] == NAMES


def test_cli_generate_with_a_profile(default_model, capsys) -> None:
    code = main(["generate", "--profile", "cost-sensitive", "--model", str(default_model),
                 "--prompt", "The capital of France is", "--max-tokens", "4", "--json"])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and events[-1]["event"] == "done"
    assert "profile cost-sensitive" in err and "context 2048" in err


def test_store_survives_a_damaged_file_and_ignores_changed_files(tmp_path, default_model):
    store = MeasurementStore(tmp_path / "benchmarks.json")
    store.path.write_text("{not json")
    assert store.all() == []  # set aside, not a crash
    assert (tmp_path / "benchmarks.json.bad").is_file()
    copy = tmp_path / "m.gguf"
    copy.write_bytes(b"x" * 10)
    store.add(Measurement(*file_key(copy), file="m.gguf", quant="Q4_K_M", decode_tok_s=1.0))
    assert store.latest(copy) is not None and str(copy.resolve()) in store.by_path()
    copy.write_bytes(b"y" * 11)  # the file changed: its old figures no longer apply
    assert store.latest(copy) is None and store.by_path() == {}


def test_a_plan_becomes_an_engine_config_and_sampling(variants) -> None:
    from core.settings import profile_engine_config, profile_sampling

    hq = plan_profile(BUILTINS["high-quality"], variants, CPU_BOX)
    config = profile_engine_config(hq)
    assert config.model_path == Path(hq.path) and config.n_ctx == hq.n_ctx_per_seq == 8192
    assert config.draft == "twin" and config.n_gpu_layers == 0
    assert profile_sampling(hq, seed=7).temperature == 0.6 and profile_sampling(hq).preset \
        == "top-p"
    tiny = manual_profile("0", "64MiB")  # nothing fits in 64 MiB of RAM
    none = plan_profile(BUILTINS["bulk-processing"], variants, tiny)
    assert none.chosen is None and none.to_dict()["parallel"] == 16
    assert any("no model in the library fits" in r for r in none.reasons)
    with pytest.raises(ConfigError, match="found no model that fits"):
        profile_engine_config(none)
