"""Shared test set-up.

Every module in ``tests/fixtures`` is a fixture plugin (so parts of the suite can add
fixtures without editing this file). Each test gets its own ``HEARTH_HOME`` so no test sees
another's settings or history; large model files are cached across runs under
``.cache/test-models`` (git-ignored) because assembling or quantizing them is slow.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = [f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules([str(_FIXTURES)])]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HEARTH_HOME per test; also keeps Hugging Face tools off the network."""
    home = tmp_path / "hearth-home"
    monkeypatch.setenv("HEARTH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home
