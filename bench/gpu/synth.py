"""A model with the bundled Gemma 3 270M's exact shapes and vocabulary, and random weights.

A GPU machine that takes a 64 MiB upload cannot receive a 253 MB model, but it needs one
that llama.cpp treats exactly like the bundled model: same architecture, tensor names and
shapes, vocabulary, context length and sliding window. Speed, memory, power and the
fallback chain depend on those, not on the weights' values, so the kit carries the
model's header (every metadata key plus each tensor's name, shape and type: a few MB) and
this module writes an F16 file from it with seeded random weights (norms at 1.0), which
llama.cpp's own quantizer then turns into Q4_K_M and Q8_0 as it would any F16 model.
Its text is gibberish; it is labelled synthetic wherever it is reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TENSORS_KEY = "hearth.synthetic.tensors"
SKIPPED_KEYS = ("GGUF.", "general.architecture", "general.file_type",
                "general.quantization_version", TENSORS_KEY)
MOSTLY_F16 = 1


def _copy_fields(reader: Any, writer: Any) -> None:
    """Every metadata key of ``reader`` into ``writer``, with its GGUF types."""
    from gguf import GGUFValueType

    for key, f in reader.fields.items():
        if key.startswith(SKIPPED_KEYS):
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, f.contents(), vtype, sub)


def write_header(model: Path, out: Path) -> dict[str, Any]:
    """The header of ``model``: its metadata and tensor list, no weights."""
    from gguf import GGUFReader, GGUFWriter

    reader = GGUFReader(model)
    arch = reader.fields["general.architecture"].contents()
    tensors = [[t.name, [int(n) for n in t.shape], t.tensor_type.name] for t in reader.tensors]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(out, arch)
    _copy_fields(reader, writer)
    writer.add_string(TENSORS_KEY, json.dumps(tensors))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"from": model.name, "architecture": arch, "tensors": len(tensors),
            "bytes": out.stat().st_size}


def random_f16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random F16 weights of either sign, magnitude in [2^-7, 2^-4) (about a trained
    model's spread), made as bit patterns in one pass — a 170M-element embedding matrix in
    a second, where a normal draw and a conversion take several: random sign, mantissa and
    two low exponent bits, the exponent's high bits fixed at 0b010 (biased 8..11)."""
    bits = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    bits &= np.uint16(0x8FFF)
    bits |= np.uint16(0x2000)
    return bits.view(np.float16)


def synthesize(header: Path, out: Path, seed: int = 0) -> Path:
    """Write an F16 model from ``header`` (once; an existing ``out`` is kept)."""
    from gguf import GGUFReader, GGUFWriter

    if out.is_file():
        return out
    reader = GGUFReader(header)
    if TENSORS_KEY not in reader.fields:
        raise ValueError(f"{header} is not a model header made by `gpu-check.sh prepare`")
    arch = reader.fields["general.architecture"].contents()
    tensors = json.loads(reader.fields[TENSORS_KEY].contents())
    partial = out.with_suffix(".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(partial, arch)
    _copy_fields(reader, writer)
    writer.add_file_type(MOSTLY_F16)
    writer.add_uint32("hearth.synthetic.seed", seed)
    rng = np.random.default_rng(seed)
    for name, ne, _type in tensors:
        shape = tuple(reversed(ne))  # GGUF lists ne0 first; numpy wants it last
        data = np.ones(shape, dtype=np.float32) if len(shape) == 1 else random_f16(rng, shape)
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    return out


def variants(header: Path, folder: Path, types: tuple[str, ...] = ("Q4_K_M", "Q8_0")
             ) -> dict[str, Path]:
    """The synthetic F16 model and its quantizations (llama.cpp's quantizer, via Hearth's
    ``quantize_model``), made once into ``folder``."""
    from core.gguf.quantize import quantize_model

    f16 = synthesize(header, folder / "synthetic-gemma-3-270m-f16.gguf")
    out = {"F16": f16}
    for qtype in types:
        path = folder / f"synthetic-gemma-3-270m-{qtype.lower()}.gguf"
        if not path.is_file():
            quantize_model(f16, path, qtype)
        out[qtype] = path
    return out
