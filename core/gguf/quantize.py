"""Local quantization through llama.cpp's own ``llama_model_quantize``.

The seed's first lever is quantization (INT8/INT4). Rather than shipping a second quantizer,
Hearth calls the one inside the vendored llama.cpp, so a file made here is byte-for-byte what
``llama-quantize`` would make. Two things the C API lacks are added:

* progress: llama.cpp logs one ``[  i/  n] tensor-name ...`` line per tensor; a temporary log
  callback turns those lines into :class:`QuantizeProgress` events (the same events serve the
  CLI's progress line and the GUI's progress bar);
* safety: the output is written to a temporary name and renamed only when complete, and types
  that need an importance matrix (which Hearth does not compute) are refused up front with a
  sentence the user can act on, instead of llama.cpp's abort deep inside the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import llama_log
from core.errors import ConfigError, HearthError, ModelFileError

# Target types a user may ask for, by llama.cpp's ftype name, with their llama_ftype value.
QUANT_TYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "BF16": 32,
}

# Types whose tensors llama.cpp only quantizes with an importance matrix (see
# ``tensor_requires_imatrix`` in src/llama-quant.cpp): refused, never attempted.
IMATRIX_TYPES: frozenset[str] = frozenset(
    {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "Q2_K_S"}
)

# Un-quantized file types: a source of these is never "requantized".
_FLOAT_FTYPES = {0, 1, 32}

_PROGRESS_RE = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\]\s+(\S+)")


class QuantizeError(HearthError):
    """llama.cpp could not quantize the file."""


@dataclass(frozen=True)
class QuantizeProgress:
    """One tensor done: ``done`` of ``total`` tensors, the last one being ``tensor``."""

    done: int
    total: int
    tensor: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressFn = Callable[[QuantizeProgress], None]


def parse_type(name: str) -> int:
    """The llama_ftype for a type name (case-insensitive), or a clear :class:`ConfigError`."""
    key = name.strip().upper()
    if key in IMATRIX_TYPES or key.startswith("IQ") or key.startswith("TQ"):
        raise ConfigError(
            f"Quantization type {key} needs an importance matrix, which Hearth does not "
            f"compute; choose one of Q4_K_M, Q5_K_M, Q6_K, Q8_0 or F16."
        )
    if key not in QUANT_TYPES:
        raise ConfigError(
            f"Unknown quantization type {name!r}; choose one of {', '.join(QUANT_TYPES)}."
        )
    return QUANT_TYPES[key]


def _source_ftype(path: Path) -> int | None:
    """The file type recorded in a GGUF header (None when the header does not say)."""
    from core.gguf.reader import read_local

    return read_local(path).file_type


def quantize_model(
    src: Path | str,
    dst: Path | str,
    qtype: str,
    *,
    allow_requantize: bool = False,
    nthread: int = 0,
    progress: ProgressFn | None = None,
    embedding_type: int | None = None,
) -> Path:
    """Quantize ``src`` (a GGUF) into ``dst`` as ``qtype``; returns ``dst``.

    ``embedding_type`` (a ggml type id) overrides the type of the token embedding and the
    output tensor, as ``llama-quantize --token-embedding-type`` does (the quantized twin
    uses it: Gemma's 262k-row embedding is also its output head).

    ``allow_requantize`` permits a source that is itself quantized (e.g. making F16 or Q8_0
    from a Q4_K_M file for tests): the result is never better than the source, so it is off
    by default and the error says so. ``progress`` is called once per tensor.
    """
    import llama_cpp

    src, dst = Path(src), Path(dst)
    ftype = parse_type(qtype)
    if not src.is_file():
        raise ModelFileError(f"The model file {src} does not exist; check the path.")
    src_ftype = _source_ftype(src)
    if not allow_requantize and src_ftype is not None and src_ftype not in _FLOAT_FTYPES:
        raise ConfigError(
            f"{src.name} is already quantized; quantizing it again loses quality. Start from "
            f"an F16/F32 file, or pass --allow-requantize if you accept the loss."
        )
    if dst.exists() and dst.resolve() == src.resolve():
        raise ConfigError("The output file must differ from the input file.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")

    errors: list[str] = []

    def on_log(level: int, line: str) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR
            errors.append(line)
        if progress is not None:
            match = _PROGRESS_RE.search(line)
            if match:
                progress(QuantizeProgress(int(match[1]), int(match[2]), match[3]))

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = allow_requantize
    params.nthread = nthread
    if embedding_type is not None:
        params.token_embedding_type = embedding_type
        params.output_tensor_type = embedding_type
    try:
        with llama_log.listening(on_log):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            detail = f" ({errors[-1]})" if errors else ""
            raise QuantizeError(
                f"llama.cpp could not quantize {src.name} to {qtype.upper()}{detail}; check that "
                f"the input is a complete GGUF model and that the disk has room."
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst

