"""The settings file: one bad value costs only itself, a damaged file is set aside."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from core.planning.profiles import BUILTINS
from core.settings import Settings, load_settings, save_settings


def test_one_bad_value_keeps_every_other_setting(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.json"
    good = Settings(n_ctx=8192, temperature=0.3, models_dir="/data/models", send_with="ctrl+enter")
    save_settings(good, path)
    data = json.loads(path.read_text())
    data["threads"] = -4  # out of range
    data["top_k"] = "many"  # wrong type
    path.write_text(json.dumps(data))
    problems: list[str] = []
    with caplog.at_level(logging.WARNING, logger="hearth.settings"):
        loaded = load_settings(path, problems)
    assert (loaded.n_ctx, loaded.temperature, loaded.models_dir, loaded.send_with) == (
        8192, 0.3, "/data/models", "ctrl+enter")
    assert loaded.threads == Settings().threads and loaded.top_k == Settings().top_k
    assert "'threads'" in caplog.text and "'top_k'" in caplog.text
    assert len(problems) == 1 and "threads, top_k" in problems[0] and ".bad" in problems[0]
    assert json.loads((tmp_path / "settings.json.bad").read_text()) == data  # nothing lost
    assert path.is_file()


def test_a_damaged_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ not json")
    problems: list[str] = []
    assert load_settings(path, problems) == Settings()
    assert len(problems) == 1 and "damaged" in problems[0]
    assert not path.exists() and (tmp_path / "settings.json.bad").read_text() == "{ not json"


def test_a_profile_choice_is_read_after_the_profiles_it_names(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    mine = replace(BUILTINS["cost-sensitive"], name="night-batch", title="Night batch",
                   builtin=False).to_dict()
    # written choice first: the file's key order must not decide what is valid
    path.write_text(json.dumps({"chat_profile": "night-batch", "profiles": [mine]}))
    loaded = load_settings(path)
    assert loaded.chat_profile == "night-batch" and "night-batch" in loaded.all_profiles()
    assert not (tmp_path / "settings.json.bad").exists()
