"""The quantized twin: a Q4_K_M copy of a full-precision model, used as its own draft.

A model drafting for itself at 4 bits agrees with its full-precision original on almost
every greedy token, and it decodes about three times faster on a CPU (it reads a quarter of
the bytes per token). Speculation with it keeps the target's output exactly (every emitted
token is the target's), so an F16/F32/Q8_0 model runs at close to Q4 speed without Q4's
loss. The twin is made once with llama.cpp's own quantizer and cached next to the model; when
that folder is read-only it goes under Hearth's models folder instead.

Its type is Q4_K_M with one change, the same as ``llama-quantize --token-embedding-type
q4_0 --output-tensor-type q4_0``: plain Q4_K_M keeps the token embedding at Q8_0, and on a
model with a large tied vocabulary (Gemma 3: 262,144 x 640, 63% of the 270M weights) that one
tensor, used as the output layer, dominates the draft's time. Measured here (2 cores, the
270M model): the plain Q4_K_M twin decodes at ~106 tok/s, this one at ~177 tok/s, and it
still agrees with the F32 target on ~94% of greedy guesses (plain Q4_K_M: ~97%). The draft's
quality only moves the acceptance rate; the output stays the target's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.errors import ConfigError, ModelFileError
from core.gguf.quantize import ProgressFn
from core.paths import models_dir

TWIN_TYPE = "Q4_K_M"
TWIN_EMBEDDING_TYPE = 2  # GGML_TYPE_Q4_0, for token_embd.weight and output.weight
# Source file types a twin helps: F32, F16, Q8_0, BF16 (llama_ftype values).
TWIN_SOURCES = {0: "F32", 1: "F16", 7: "Q8_0", 32: "BF16"}


def _file_type(path: Path) -> int | None:
    from core.gguf.reader import read_local

    return read_local(path).file_type


def twin_path(target: Path) -> Path:
    """Where the twin of ``target`` lives (whether or not it exists yet)."""
    target = Path(target)
    name = f"{target.stem}.twin-q4.gguf"
    if os.access(target.parent, os.W_OK):
        return target.parent / name
    # A read-only folder: key the cached twin by the target's full path and size.
    stat = target.stat()
    key = hashlib.sha256(f"{target.resolve()}:{stat.st_size}".encode()).hexdigest()[:12]
    return models_dir() / "twins" / f"{target.stem}-{key}.twin-q4.gguf"


def is_twin_fresh(target: Path, twin: Path) -> bool:
    """A twin is reused only if it is newer than its target (a replaced target gets a new
    twin)."""
    return twin.is_file() and twin.stat().st_mtime >= Path(target).stat().st_mtime


def ensure_twin(target: Path, progress: ProgressFn | None = None) -> Path:
    """The path of ``target``'s Q4_K_M twin, quantizing it first if needed (about a
    minute for a 270M F32 model on two cores; ``progress`` is called once per tensor)."""
    target = Path(target)
    if not target.is_file():
        raise ModelFileError(f"The model file {target} does not exist; check the path.")
    ftype = _file_type(target)
    if ftype not in TWIN_SOURCES:
        from core.gguf.info import FTYPE_NAMES

        kind = FTYPE_NAMES.get(ftype, "an unknown type") if ftype is not None else "unknown"
        raise ConfigError(
            f"{target.name} is {kind}; a quantized twin only speeds up F32, F16, BF16 or "
            f"Q8_0 models. Run this model without a draft, or give a smaller draft model."
        )
    twin = twin_path(target)
    if is_twin_fresh(target, twin):
        return twin
    # Q8_0 is itself quantized: going down to Q4_K_M from it is what the twin is for.
    return _quantize(target, twin, allow_requantize=ftype == 7, progress=progress)


def _quantize(src: Path, dst: Path, allow_requantize: bool, progress: ProgressFn | None
              ) -> Path:
    """The twin's quantization: Q4_K_M with 4-bit token embeddings (and output head)."""
    from core.gguf.quantize import quantize_model

    return quantize_model(src, dst, TWIN_TYPE, allow_requantize=allow_requantize,
                          progress=progress, embedding_type=TWIN_EMBEDDING_TYPE)
