"""A strict GGUF validator that runs before llama.cpp sees a file.

Models come from the internet: truncated downloads, other files renamed to ``.gguf``,
hostile metadata. llama.cpp's own parser rejects most damage cleanly, but some inputs get
past it and then abort or crash the process that loads them (a vocabulary with no
tokenizer, for one). The worker process keeps the app alive through such a crash, yet the
user would only learn that "the engine crashed"; this module turns every known bad shape
into one sentence that says what is wrong, before any native code runs.

It is written in plain Python on purpose (not through llama.cpp's reader, as
``core.gguf.info`` is): a bug in a C parser fed hostile bytes would take down whichever
process ran it, and this check must be safe to run in the GUI process. The rules mirror
``ggml/src/gguf.cpp`` (so nothing that passes here fails there for structural reasons)
and add what llama.cpp leaves unchecked: every tensor's bytes inside the file, bounded
strings and arrays, a usable tokenizer. The file is read through ``mmap``, so only the
header's pages are touched; the default 253 MB model (a 262,144-token vocabulary) takes
~30 ms, dominated by stepping over the vocabulary's strings.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGML_QUANT_SIZES

from core.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Bounds far above any real model and far below what could exhaust memory: the largest
# published models have a few thousand tensors and ~100 metadata keys; vocabularies are
# < 1M tokens; chat templates are tens of KB.
MAX_TENSORS = 1 << 16
MAX_KV = 1 << 16
MAX_KEY_BYTES = 1 << 16
MAX_STRING_BYTES = 16 << 20  # one metadata string (chat templates are the longest)
MAX_ARRAY_STRING_BYTES = 1 << 16  # one element of a string array (a token, a merge)
MAX_ARRAY_ITEMS = 1 << 24
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME - 1
MAX_DIMS = 4
INT64_MAX = (1 << 63) - 1
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS (src/llama-hparams.h)
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS

# GGUF value types -> (struct format, size); 8 = string, 9 = array.
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
            6: ("f", 4), 7: ("b", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
_STRING, _ARRAY = 8, 9
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
# Tensor types this build can store, with (elements per block, bytes per block).
_TENSOR_TYPES = {int(t): sizes for t, sizes in GGML_QUANT_SIZES.items()}
# tokenizer.ggml.model values for which llama.cpp builds no tokenizer, then aborts on the
# first tokenize call (src/llama-vocab.cpp: LLAMA_VOCAB_TYPE_NONE returns before
# init_tokenizer); a chat app cannot use such a model anyway.
_NO_TOKENIZER = ("none", "no_vocab")


class _Truncated(Exception):
    """Internal: the file ends too early; the message (if any) says where."""


class _Corrupt(Exception):
    """Internal: a value breaks a rule; the message is the reason (no file name)."""


@dataclass
class GGUFSummary:
    """What validation learned, for callers that want more than "it passed"."""

    version: int
    n_tensors: int
    n_kv: int
    alignment: int
    data_offset: int
    data_end: int  # end of the last tensor's bytes
    file_size: int
    architecture: str
    scalars: dict[str, object] = field(default_factory=dict)  # scalar metadata values
    array_lengths: dict[str, int] = field(default_factory=dict)


class _Reader:
    """Bounds-checked little-endian reads over a buffer that holds the file's first bytes."""

    def __init__(self, buf: bytes | mmap.mmap | memoryview, file_size: int) -> None:
        self.buf = buf
        self.end = min(len(buf), file_size)
        self.pos = 0

    def need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Truncated

    def u32(self) -> int:
        self.need(4)
        value = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        self.need(8)
        value = _U64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return int(value)

    def i64(self) -> int:
        self.need(8)
        value = _I64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return int(value)

    def string(self, limit: int, what: str) -> bytes:
        n = self.u64()
        if n > limit:
            raise _Corrupt(f"{what} claims {n:,} bytes (the limit is {limit:,})")
        self.need(n)
        value = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return value

    def skip_strings(self, count: int, key: str) -> None:
        """Step over ``count`` length-prefixed strings (the vocabulary: the hot loop)."""
        unpack, buf, pos, end = _U64.unpack_from, self.buf, self.pos, self.end
        if pos + 8 * count > end:
            raise _Truncated
        limit = MAX_ARRAY_STRING_BYTES
        try:
            for _ in range(count):
                n = unpack(buf, pos)[0]
                if n > limit:
                    raise _Corrupt(f"an element of '{key}' claims {n:,} bytes "
                                   f"(the limit is {limit:,})")
                pos += 8 + n
        except struct.error:
            raise _Truncated from None
        if pos > end:
            raise _Truncated
        self.pos = pos


def _show(raw: bytes) -> str:
    """A name from the file as it can appear in a one-line message: printable, short."""
    text = "".join(c if c.isprintable() else "?" for c in raw.decode("utf-8", "replace"))
    return text if len(text) <= 48 else text[:47] + "…"


def _scalar(r: _Reader, kind: int) -> object:
    fmt, size = _SCALARS[kind]
    r.need(size)
    value = struct.unpack_from("<" + fmt, r.buf, r.pos)[0]
    r.pos += size
    return bool(value) if kind == 7 else value


def _read_kvs(r: _Reader, n_kv: int, summary: GGUFSummary) -> dict[str, object]:
    seen: set[bytes] = set()
    strings: dict[str, object] = {}
    for i in range(n_kv):
        raw = r.string(MAX_KEY_BYTES, f"metadata key {i}")
        if not raw:
            raise _Corrupt(f"metadata key {i} is empty")
        key = _show(raw)  # for messages and look-ups of the well-known (ASCII) keys
        if raw in seen:
            raise _Corrupt(f"metadata key '{key}' appears twice")
        seen.add(raw)
        kind = r.u32()
        if kind == _STRING:
            strings[key] = r.string(MAX_STRING_BYTES, f"metadata value '{key}'")
        elif kind == _ARRAY:
            item = r.u32()
            count = r.u64()
            if count > MAX_ARRAY_ITEMS:
                raise _Corrupt(f"array '{key}' claims {count:,} items "
                               f"(the limit is {MAX_ARRAY_ITEMS:,})")
            summary.array_lengths[key] = count
            if item == _STRING:
                r.skip_strings(count, key)
            elif item in _SCALARS:
                size = _SCALARS[item][1]
                r.need(count * size)
                r.pos += count * size
            else:
                raise _Corrupt(f"array '{key}' has an invalid item type {item}")
        elif kind in _SCALARS:
            summary.scalars[key] = _scalar(r, kind)
        else:
            raise _Corrupt(f"metadata key '{key}' has an invalid type {kind}")
    return strings


def _read_tensors(r: _Reader, n_tensors: int) -> list[tuple[str, int, int]]:
    """Tensor infos as (name, offset, n_bytes), checked as ggml checks them."""
    names: set[bytes] = set()
    tensors = []
    for i in range(n_tensors):
        raw = r.string(MAX_KEY_BYTES, f"the name of tensor {i}")
        name = _show(raw)
        if not raw or len(raw) > MAX_TENSOR_NAME:
            raise _Corrupt(f"tensor {i} has a name of {len(raw)} bytes "
                           f"(1 to {MAX_TENSOR_NAME} allowed)")
        if raw in names:
            raise _Corrupt(f"tensor '{name}' appears twice")
        names.add(raw)
        n_dims = r.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise _Corrupt(f"tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        dims = [r.i64() for _ in range(n_dims)]
        n_elements = 1
        for d in dims:
            if d <= 0:
                raise _Corrupt(f"tensor '{name}' has a dimension of {d}")
            n_elements *= d
        if n_elements > INT64_MAX:
            raise _Corrupt(f"tensor '{name}' has too many elements ({n_elements:,})")
        ttype = r.u32()
        if ttype not in _TENSOR_TYPES:
            raise _Corrupt(f"tensor '{name}' has an unknown type {ttype}")
        block, type_size = _TENSOR_TYPES[ttype]
        if dims[0] % block:
            raise _Corrupt(f"tensor '{name}' has rows of {dims[0]} elements, not a multiple "
                           f"of its type's block of {block}")
        offset = r.u64()
        tensors.append((name, offset, n_elements // block * type_size))
    return tensors


def _check_semantics(summary: GGUFSummary, strings: dict[str, object]) -> None:
    """Rules above the file format: what llama.cpp assumes of a model's metadata."""
    arch = strings.get("general.architecture")
    if not isinstance(arch, bytes) or not arch:
        raise _Corrupt("it has no general.architecture, so it is not a model")
    summary.architecture = arch.decode("utf-8", "replace")
    tokenizer = strings.get("tokenizer.ggml.model")
    if isinstance(tokenizer, bytes) and tokenizer.decode("utf-8", "replace") in _NO_TOKENIZER:
        raise _Corrupt("it has no tokenizer (tokenizer.ggml.model is "
                       f"'{tokenizer.decode('utf-8', 'replace')}'), so it cannot chat")
    _check_hparams(summary.architecture, summary.scalars)
    n_tokens = summary.array_lengths.get("tokenizer.ggml.tokens")
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        n = summary.array_lengths.get(key)
        if n_tokens is not None and n is not None and n != n_tokens:
            raise _Corrupt(f"'{key}' has {n:,} entries for {n_tokens:,} tokens")


def _check_hparams(arch: str, scalars: dict[str, object]) -> None:
    """Hyperparameters that llama.cpp asserts on (``GGML_ASSERT`` aborts the process) in
    ``llama_model::load_hparams`` or at the first decode, checked here instead."""
    prefix = arch + "."
    for key, value in scalars.items():
        if not key.startswith(prefix) or isinstance(value, bool):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _Corrupt(f"'{key}' is {value}, not a finite number")
            if "epsilon" in key and value < 0:
                raise _Corrupt(f"'{key}' is negative ({value})")
        elif isinstance(value, int) and not 0 <= value < 1 << 31:
            raise _Corrupt(f"'{key}' is {value:,}, out of range")

    def get(name: str) -> int | None:
        value = scalars.get(prefix + name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    n_layer = get("block_count")
    if n_layer is not None and not 1 <= n_layer <= MAX_LAYERS:
        raise _Corrupt(f"it has {n_layer} layers (1 to {MAX_LAYERS} are supported)")
    if get("context_length") == 0:
        raise _Corrupt("its training context length is 0")
    nextn = get("nextn_predict_layers")
    if n_layer is not None and nextn is not None and nextn > n_layer:
        raise _Corrupt(f"it has {nextn} prediction layers but only {n_layer} layers")
    n_expert, n_used = get("expert_count") or 0, get("expert_used_count") or 0
    groups, groups_used = get("expert_group_count") or 0, get("expert_group_used_count") or 0
    if n_expert > MAX_EXPERTS or n_used > n_expert or (n_expert > 0) != (n_used > 0):
        raise _Corrupt(f"it uses {n_used} of {n_expert} experts")
    if groups and (groups >= n_expert or n_expert % groups or not 0 < groups_used < groups):
        raise _Corrupt(f"its {n_expert} experts cannot form {groups} groups "
                       f"({groups_used} used)")


def validate_buffer(buf: bytes | mmap.mmap | memoryview, file_size: int,
                    name: str = "the model file") -> GGUFSummary:
    """Validate a GGUF whose first ``len(buf)`` bytes are ``buf`` and whose size on disk is
    ``file_size``. Raises :class:`ModelFileError` (one sentence) on the first problem."""
    try:
        return _validate(_Reader(buf, file_size), file_size)
    except _Truncated as err:
        where = str(err) or "ends inside its header"
        raise ModelFileError(f"Model file is truncated: {name} {where} (an incomplete "
                             "download?). Download it again.") from None
    except _Corrupt as err:
        raise ModelFileError(f"Model file is corrupt: {name}: {err}. Download it again or "
                             "choose another file.") from None


def _validate(r: _Reader, file_size: int) -> GGUFSummary:
    r.need(4)
    if bytes(r.buf[0:4]) != GGUF_MAGIC:
        raise _Corrupt("it does not start with 'GGUF', so it is not a GGUF model")
    r.pos = 4
    version = r.u32()
    if version not in SUPPORTED_VERSIONS:
        raise _Corrupt(f"GGUF version {version} is not supported (versions 2 and 3 are)")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise _Corrupt(f"its header claims {n_tensors:,} tensors and {n_kv:,} metadata keys")
    summary = GGUFSummary(version, n_tensors, n_kv, DEFAULT_ALIGNMENT, 0, 0, file_size, "")
    strings = _read_kvs(r, n_kv, summary)
    if "general.alignment" in summary.scalars or "general.alignment" in strings:
        alignment = summary.scalars.get("general.alignment")
        if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 \
                or alignment & (alignment - 1) or alignment > 1 << 20:
            raise _Corrupt(f"general.alignment is {alignment!r}, not a power of two")
        summary.alignment = alignment
    tensors = _read_tensors(r, n_tensors)
    align = summary.alignment
    summary.data_offset = -(-r.pos // align) * align if n_tensors else r.pos
    expected = 0
    for tname, offset, n_bytes in tensors:
        if offset != expected:
            raise _Corrupt(f"tensor '{tname}' is at offset {offset:,}, expected {expected:,}")
        summary.data_end = summary.data_offset + offset + n_bytes
        expected += -(-n_bytes // align) * align
    if summary.data_end > file_size:
        raise _Truncated(f"has {file_size:,} bytes but its tensors need {summary.data_end:,}")
    _check_semantics(summary, strings)
    return summary


def validate_gguf(path: Path) -> GGUFSummary:
    """Validate the GGUF file at ``path``; :class:`ModelFileError` names the first problem."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                raise ModelFileError(f"Model file is empty: {path}. Download it again.")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return validate_buffer(mapped, size, path.name)
    except OSError as err:
        raise ModelFileError(f"Cannot read {path} ({err.strerror}); check the path.") from err
