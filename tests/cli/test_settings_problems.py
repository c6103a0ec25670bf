"""hearth-cli says on stderr what was wrong with settings.json, and goes on with the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.plan import user_settings


def test_a_bad_setting_is_said_on_stderr(isolated_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "settings.json").write_text(json.dumps({"n_ctx": 2048, "gpu_layers": -7}))
    settings = user_settings()
    err = capsys.readouterr().err
    assert err.startswith("hearth-cli: ") and "gpu_layers" in err and ".bad" in err
    assert settings.n_ctx == 2048 and settings.gpu_layers == -1
