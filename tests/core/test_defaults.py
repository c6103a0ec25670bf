"""The bundled default model is assembled, verified, and repaired when damaged."""

from __future__ import annotations

from pathlib import Path

from core.models.bundled import (
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_SHA256,
    default_model_path,
    sha256_file,
)


def test_assembles_verifies_and_repairs(tmp_path: Path) -> None:
    path = default_model_path(tmp_path)
    assert path == tmp_path / DEFAULT_MODEL_NAME
    assert sha256_file(path) == DEFAULT_MODEL_SHA256
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    # Damage it in place (same size): the next call notices and re-assembles.
    with path.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00" * 16)
    assert default_model_path(tmp_path) == path
    assert sha256_file(path) == DEFAULT_MODEL_SHA256


def test_uses_hearth_home_by_default(isolated_home: Path) -> None:
    assert default_model_path().parent == isolated_home / "models"
