"""ggml's shared libraries as llama-cpp-python ships them, opened with ctypes.

llama-cpp-python binds llama.h but not ggml's GGUF reader or its device list; both live in
the ``ggml``/``ggml-base`` libraries beside ``libllama`` in the package's ``lib`` folder. By
the time this runs ``llama_cpp`` is imported, so the libraries are already mapped into the
process and opening them again only hands back the same handle.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

from core.errors import HearthError


def _candidates(base: str, folder: Path) -> list[Path]:
    if sys.platform == "win32":
        return [folder / f"{base}.dll", folder / f"lib{base}.dll"]
    if sys.platform == "darwin":
        return [folder / f"lib{base}.dylib", folder / f"lib{base}.so"]
    return [folder / f"lib{base}.so"]


@functools.cache
def ggml_library(base: str) -> ctypes.CDLL:
    """The ggml library ``base`` ("ggml", "ggml-base") from llama-cpp-python's package."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent / "lib"
    for path in _candidates(base, folder):
        if path.is_file():
            return ctypes.CDLL(str(path))
    raise HearthError(f"llama-cpp-python's {base} library is missing from {folder}; "
                      "reinstall Hearth.")
