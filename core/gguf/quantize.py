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

Mixed precision (the seed's "layers 1-24 INT8, 25-30 FP16, output FP32") goes through the same
parameters as ``llama-quantize --tensor-type/--output-tensor-type/--token-embedding-type``:
a :class:`MixedPrecision` becomes ``tt_overrides`` (regex → ggml type, searched in each tensor
name), ``output_tensor_type`` and ``token_embedding_type``. Each pattern is checked against
the source's tensor names first, so a typo is an error, not a silent no-op; on a model whose
output head is its token embedding (Gemma), the output type is applied to that tensor, which
is what the user asked for. A file made from an already-quantized source records that in its
header (``hearth.requantized_from``), so a benchmark that uses it as a reference can say that
its "higher precision" holds the lower-precision weights.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType

from core import llama_log
from core.errors import ConfigError, HearthError, ModelFileError
from core.gguf.info import FTYPE_NAMES, ModelInfo

log = logging.getLogger("hearth.quantize")

REQUANTIZED_KEY = "hearth.requantized_from"

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


def ggml_type(name: str) -> int:
    """A ggml tensor type id by name (``Q8_0``, ``F16``, ``Q4_K``...), or a clear error."""
    key = name.strip().upper()
    try:
        return int(GGMLQuantizationType[key])
    except KeyError:
        hint = f" (a tensor type, e.g. {key.rsplit('_', 1)[0]})" if key.endswith(
            ("_K_M", "_K_S", "_K_L")) else ""
        known = ", ".join(t.name for t in GGMLQuantizationType if not t.name.startswith("IQ")
                          and not t.name.startswith("TQ") and t.name[:1] in "QFB")
        raise ConfigError(f"Unknown tensor type {name!r}{hint}; choose one of {known}.") \
            from None


@dataclass(frozen=True)
class MixedPrecision:
    """Per-tensor types on top of a file type: ``tensor_types`` are ``(regex, ggml type
    name)`` pairs, first match wins (as llama-quantize); ``output_type`` and
    ``token_embedding_type`` name the head's and the embedding's types."""

    tensor_types: tuple[tuple[str, str], ...] = ()
    output_type: str | None = None
    token_embedding_type: str | None = None

    @classmethod
    def parse(cls, specs: list[str], output_type: str | None = None,
              token_embedding_type: str | None = None) -> MixedPrecision:
        """From ``llama-quantize``-style ``REGEX=TYPE`` strings (the last ``=`` splits)."""
        pairs = []
        for spec in specs:
            pattern, sep, qtype = spec.rpartition("=")
            if not sep or not pattern or not qtype:
                raise ConfigError(f"--tensor-type {spec!r} must look like "
                                  f"'blk\\.(1[2-7])\\.=Q8_0' (a pattern, '=', a type).")
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"--tensor-type pattern {pattern!r} is not a valid regular "
                                  f"expression ({err}).") from None
            ggml_type(qtype)
            pairs.append((pattern, qtype.strip().upper()))
        for value in (output_type, token_embedding_type):
            if value is not None:
                ggml_type(value)
        return cls(tuple(pairs), output_type and output_type.upper(),
                   token_embedding_type and token_embedding_type.upper())

    @property
    def empty(self) -> bool:
        return not self.tensor_types and not self.output_type and not self.token_embedding_type

    def resolve(self, info: ModelInfo) -> ResolvedMix:
        """What llama.cpp will be told for this source, and notes for the user."""
        names = [t.name for t in info.tensors]
        notes: list[str] = []
        for pattern, qtype in self.tensor_types:
            hits = [n for n in names if re.search(pattern, n)]
            if not hits:
                raise ConfigError(f"--tensor-type pattern {pattern!r} matches no tensor of "
                                  f"{Path(info.source).name}; names look like "
                                  f"'blk.0.attn_q.weight' or 'token_embd.weight'.")
            notes.append(f"{len(hits)} tensors match {pattern!r} -> {qtype}")
        embedding = self.token_embedding_type
        if self.output_type and "output.weight" not in names:
            if embedding is None:
                embedding = self.output_type
                notes.append(f"{Path(info.source).name} has no separate output.weight (its "
                             f"output head is token_embd.weight): that tensor gets "
                             f"{self.output_type}")
            else:
                notes.append("the model has no output.weight; the output type has no tensor "
                             "to apply to (the token-embedding type sets its head)")
        return ResolvedMix(
            overrides=[(p, ggml_type(t)) for p, t in self.tensor_types],
            output_type=ggml_type(self.output_type) if self.output_type else None,
            token_embedding_type=ggml_type(embedding) if embedding else None, notes=notes)


@dataclass
class ResolvedMix:
    """A :class:`MixedPrecision` checked against one source file."""

    overrides: list[tuple[str, int]] = field(default_factory=list)
    output_type: int | None = None
    token_embedding_type: int | None = None
    notes: list[str] = field(default_factory=list)


def _tensor_overrides(pairs: list[tuple[str, int]]) -> Any:
    """A NULL-terminated ``llama_model_tensor_override`` array (kept alive by the caller)."""
    import llama_cpp

    array = (llama_cpp.llama_model_tensor_override * (len(pairs) + 1))()
    for i, (pattern, qtype) in enumerate(pairs):
        array[i].pattern = pattern.encode()
        array[i].type = qtype
    array[len(pairs)].pattern = None
    return array


def _requantized_note(source_type: str) -> Any:
    """A one-entry ``kv_overrides`` array writing :data:`REQUANTIZED_KEY` = the source type."""
    import llama_cpp

    array = (llama_cpp.llama_model_kv_override * 2)()
    array[0].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
    array[0].key = REQUANTIZED_KEY.encode()
    value: Any = array[0].value
    value.val_str = source_type.encode()[:127]
    array[1].key = b""
    return array


def quantize_model(
    src: Path | str,
    dst: Path | str,
    qtype: str,
    *,
    allow_requantize: bool = False,
    nthread: int = 0,
    progress: ProgressFn | None = None,
    embedding_type: int | None = None,
    mix: MixedPrecision | None = None,
) -> Path:
    """Quantize ``src`` (a GGUF) into ``dst`` as ``qtype``; returns ``dst``.

    ``embedding_type`` (a ggml type id) overrides the type of the token embedding and the
    output tensor, as ``llama-quantize --token-embedding-type`` does (the quantized twin
    uses it: Gemma's 262k-row embedding is also its output head). ``mix`` adds per-tensor
    types (see :class:`MixedPrecision`); its notes go to the log.

    ``allow_requantize`` permits a source that is itself quantized (e.g. making F16 or Q8_0
    from a Q4_K_M file for tests): the result is never better than the source, so it is off
    by default and the error says so. ``progress`` is called once per tensor.
    """
    import llama_cpp

    src, dst = Path(src), Path(dst)
    ftype = parse_type(qtype)
    if not src.is_file():
        raise ModelFileError(f"The model file {src} does not exist; check the path.")
    from core.gguf.reader import read_local

    info = read_local(src)
    src_ftype = info.file_type
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
    keep: list[Any] = []  # ctypes arrays the params point into, alive until the call returns
    if mix is not None and not mix.empty:
        resolved = mix.resolve(info)
        for note in resolved.notes:
            log.info("quantize %s: %s", src.name, note)
        if resolved.overrides:
            keep.append(_tensor_overrides(resolved.overrides))
            params.tt_overrides = ctypes.cast(keep[-1], type(params.tt_overrides))
        if resolved.output_type is not None:
            params.output_tensor_type = resolved.output_type
        if resolved.token_embedding_type is not None:
            params.token_embedding_type = resolved.token_embedding_type
    if (src_ftype is not None and src_ftype not in _FLOAT_FTYPES
            and REQUANTIZED_KEY not in info.metadata):  # (a present key is copied as is)
        keep.append(_requantized_note(FTYPE_NAMES.get(src_ftype, f"ftype {src_ftype}")))
        params.kv_overrides = ctypes.cast(keep[-1], type(params.kv_overrides))
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

