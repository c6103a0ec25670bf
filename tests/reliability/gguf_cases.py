"""Fuzz cases: where a GGUF header's fields lie, and seeded edits of them (recipes of a few
hundred bytes that any failing input can be saved as)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Single-value edits that break parsers: zero, one, sign bits, all ones, powers of two.
_INTERESTING_64 = (0, 1, 2, 7, 63, 64, 255, 256, 4096, 65535, 65536, (1 << 31) - 1,
                   1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
# 32-bit patterns that are also interesting floats: NaN, +-inf, -1.0, -0.0.
_INTERESTING_32 = (0x7FC00000, 0x7F800000, 0xFF800000, 0xBF800000, 0x80000000)
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


@dataclass(frozen=True)
class FieldRef:
    """A structural field of the base header: where, how wide, and what it is."""

    offset: int
    width: int
    label: str
    structural: bool  # a length, count, type or offset (vs. a metadata value)


@dataclass
class Layout:
    """Where things are in the base file's header, found by walking it once."""

    header_end: int  # end of the tensor infos (the data starts at the next alignment)
    vocab: tuple[int, int]  # byte range of the vocabulary strings
    fields: list[FieldRef] = field(default_factory=list)
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)


def walk_layout(buf: bytes) -> Layout:
    """Walk a well-formed GGUF header and record its fields (test-side, independent of
    the validator, so the two cannot share a blind spot)."""
    u32 = lambda o: struct.unpack_from("<I", buf, o)[0]  # noqa: E731
    u64 = lambda o: struct.unpack_from("<Q", buf, o)[0]  # noqa: E731
    fields = [FieldRef(4, 4, "version", True), FieldRef(8, 8, "n_tensors", True),
              FieldRef(16, 8, "n_kv", True)]
    n_tensors, n_kv = u64(8), u64(16)
    off, vocab, first_kv_end = 24, (0, 0), 0
    for _ in range(n_kv):
        key_len = u64(off)
        key = buf[off + 8:off + 8 + key_len].decode()
        fields.append(FieldRef(off, 8, f"{key}: key length", True))
        off += 8 + key_len
        fields.append(FieldRef(off, 4, f"{key}: type", True))
        kind = u32(off)
        off += 4
        if kind == 8:
            fields.append(FieldRef(off, 8, f"{key}: string length", True))
            off += 8 + u64(off)
        elif kind == 9:
            item, count = u32(off), u64(off + 4)
            fields.append(FieldRef(off, 4, f"{key}: item type", True))
            fields.append(FieldRef(off + 4, 8, f"{key}: item count", True))
            off += 12
            if item == 8:
                start = off
                for i in range(count):
                    if i < 4 or i == count - 1:
                        fields.append(FieldRef(off, 8, f"{key}[{i}]: length", True))
                    off += 8 + u64(off)
                if key == "tokenizer.ggml.tokens":
                    vocab = (start, off)
            else:
                off += count * _SCALAR_SIZES[item]
        else:
            size = _SCALAR_SIZES[kind]
            fields.append(FieldRef(off, size, f"{key}: value", False))
            off += size
        if key == "tokenizer.ggml.pre":
            first_kv_end = off
    infos_start = off
    for _ in range(n_tensors):
        name_len = u64(off)
        name = buf[off + 8:off + 8 + name_len].decode()
        fields.append(FieldRef(off, 8, f"tensor {name}: name length", True))
        off += 8 + name_len
        n_dims = u32(off)
        fields.append(FieldRef(off, 4, f"tensor {name}: n_dims", True))
        off += 4
        for d in range(n_dims):
            fields.append(FieldRef(off, 8, f"tensor {name}: ne[{d}]", True))
            off += 8
        fields.append(FieldRef(off, 4, f"tensor {name}: type", True))
        fields.append(FieldRef(off + 4, 8, f"tensor {name}: offset", True))
        off += 12
    regions = {"header": (0, 24), "metadata": (24, first_kv_end or vocab[0]),
               "vocabulary": vocab, "tail-metadata": (vocab[1], infos_start),
               "tensor-infos": (infos_start, off)}
    return Layout(off, vocab, fields, regions)


# --- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    """A recipe: ``base`` is "default" (the real model), "tiny" (make_tiny_llama with
    ``tiny`` overrides) or "none" (the edits alone make the file)."""

    base: str
    kind: str
    ops: list[dict[str, Any]]
    note: str = ""
    tiny: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"base": self.base, "kind": self.kind, "ops": self.ops,
                                "note": self.note}
        if self.tiny:
            data["tiny"] = self.tiny
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(data["base"], data["kind"], data["ops"], data.get("note", ""),
                   data.get("tiny", {}))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def _write(at: int, data: bytes) -> dict[str, Any]:
    return {"op": "write", "at": at, "hex": data.hex()}


def _value_for(ref: FieldRef, old: int, rng: random.Random) -> int:
    if ref.width == 4 and rng.random() < 0.3:
        return rng.choice(_INTERESTING_32)
    choices = [*_INTERESTING_64, old + 1, old - 1, old * 2, old // 2, old ^ (1 << rng.randrange(
        ref.width * 8)), rng.getrandbits(ref.width * 8)]
    return rng.choice(choices) % (1 << (ref.width * 8))


class CaseGenerator:
    """Seeded mutations of the default model's header (and a share of pure noise).

    The mix is weighted toward structure (lengths, counts, types, offsets): that is where
    parsers break, and such inputs are nearly always rejected, which keeps the number of
    real loads (the slow part, ~0.7 s each) small enough for ``make test``."""

    def __init__(self, base_header: bytes, base_size: int, layout: Layout,
                 rng: random.Random) -> None:
        self.hdr, self.size, self.layout, self.rng = base_header, base_size, layout, rng
        self.structural = [f for f in layout.fields if f.structural]
        self.values = [f for f in layout.fields if not f.structural]

    def __iter__(self) -> Iterator[Case]:
        kinds = ("field", "value", "flip", "splice", "truncate", "noise")
        weights = (48, 3, 10, 8, 18, 13)
        while True:
            kind = self.rng.choices(kinds, weights)[0]
            yield getattr(self, f"_{kind}")()

    def _field(self) -> Case:
        ref = self.rng.choice(self.structural)
        old = int.from_bytes(self.hdr[ref.offset:ref.offset + ref.width], "little")
        new = _value_for(ref, old, self.rng)
        return Case("default", "field", [_write(ref.offset, new.to_bytes(ref.width, "little"))],
                    f"{ref.label}: {old} -> {new}")

    def _value(self) -> Case:
        ref = self.rng.choice(self.values)
        old = int.from_bytes(self.hdr[ref.offset:ref.offset + ref.width], "little")
        new = _value_for(ref, old, self.rng)
        return Case("default", "value", [_write(ref.offset, new.to_bytes(ref.width, "little"))],
                    f"{ref.label}: {old:#x} -> {new:#x}")

    def _flip(self) -> Case:
        names = ("header", "metadata", "tail-metadata", "tensor-infos", "vocabulary")
        region = self.rng.choices(names, (4, 3, 1, 8, 0.5))[0]
        lo, hi = self.layout.regions[region]
        ops = []
        for _ in range(self.rng.choice((1, 1, 2, 4))):
            at = self.rng.randrange(lo, hi)
            if self.rng.random() < 0.5:
                byte = self.hdr[at] ^ (1 << self.rng.randrange(8))
            else:
                byte = self.rng.choice((*_INTERESTING_BYTES, self.rng.randrange(256)))
            ops.append(_write(at, bytes([byte])))
        return Case("default", "flip", ops, f"{len(ops)} byte(s) in the {region}")

    def _splice(self) -> Case:
        region = self.rng.choice(("metadata", "tensor-infos", "header"))
        lo, hi = self.layout.regions[region]
        at = self.rng.randrange(lo, hi)
        if self.rng.random() < 0.5:
            data = self.rng.randbytes(self.rng.choice((1, 2, 4, 8, 13)))
            return Case("default", "splice", [{"op": "insert", "at": at, "hex": data.hex()}],
                        f"{len(data)} byte(s) inserted in the {region}")
        n = self.rng.choice((1, 2, 4, 8, 13))
        return Case("default", "splice", [{"op": "delete", "at": at, "n": n}],
                    f"{n} byte(s) deleted from the {region}")

    def _truncate(self) -> Case:
        if self.rng.random() < 0.4:
            size = self.rng.randrange(0, self.layout.header_end)
        else:
            size = self.rng.randrange(self.layout.header_end, self.size)
        return Case("default", "truncate", [{"op": "truncate", "size": size}],
                    f"cut at {size:,} of {self.size:,} bytes")

    def _noise(self) -> Case:
        rng = self.rng
        style = rng.choice(("random", "magic", "header", "html", "copy-head"))
        n = rng.choice((0, 1, 3, 4, 23, 24, 100, 4096))
        body = rng.randbytes(n)
        if style == "magic":
            body = b"GGUF" + body
        elif style == "header":
            body = struct.pack("<4sIQQ", b"GGUF", rng.choice((1, 2, 3, 4, 0xFFFFFFFF)),
                               rng.choice(_INTERESTING_64), rng.choice(_INTERESTING_64)) + body
        elif style == "html":
            body = b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n"
        elif style == "copy-head":
            body = self.hdr[:rng.randrange(24, 4096)] + body
        return Case("none", "noise", [_write(0, body)] if body else [], f"{style}, {len(body)} B")


# --- applying cases to files ---------------------------------------------------------------


