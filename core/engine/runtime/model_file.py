"""Cheap checks on a model file before llama.cpp sees it.

They turn the common mistakes (a wrong path, an HTML error page saved as .gguf, an empty
file) into one clear sentence, then run the full validator (``core.gguf.validate``: every count,
string, array and tensor extent bounded, a usable tokenizer) so damaged or hostile files
are refused with a reason before llama.cpp's native loader runs on them. What is left
(an unknown architecture, missing tensors) is caught by llama.cpp's loader, whose log
gives the reason.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from core.errors import ModelFileError
from core.gguf.validate import validate_gguf

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, metadata kv count


def check_model_file(path: Path, validate: bool = True) -> None:
    """Raise :class:`ModelFileError` unless ``path`` looks like a GGUF llama.cpp can open.
    ``validate=False`` skips the full validator (tests that need llama.cpp's own failure
    modes, e.g. proving the worker survives an abort)."""
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}.")
    if not path.is_file():
        raise ModelFileError(f"Not a model file (it is a folder or a device): {path}.")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"Model file is not readable (check its permissions): {path}.")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"Model file is empty: {path}. Download it again.")
    with path.open("rb") as fh:
        head = fh.read(_HEADER.size)
    if head[:4] != GGUF_MAGIC:
        raise ModelFileError(
            f"Not a GGUF model file: {path.name} (it does not start with 'GGUF'). "
            "Hearth runs GGUF models; convert or download a .gguf file."
        )
    if len(head) < _HEADER.size:
        raise ModelFileError(f"Model file is truncated (only {size} bytes): {path}.")
    _, version, n_tensors, n_kv = _HEADER.unpack(head)
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"Unsupported GGUF version {version} in {path.name}; Hearth reads versions 2 and 3."
        )
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ModelFileError(f"Model file header is corrupt (impossible counts): {path}.")
    if validate:
        validate_gguf(path)
