"""What a GGUF file name says: its quant, whether it is one shard of a split model.

Pure functions on strings, shared by the hub listing (remote names) and the library (names on
disk). The name is a hint; the header is the truth (``general.file_type``), which callers use
to confirm the quant when they have read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from core.models.hub.errors import UnsafeFilenameError

# Longest alternatives first so "Q4_K_M" wins over "Q4_K" and "IQ2_XXS" over "IQ2_XS".
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)|IQ4_NL|Q[2-8]_K_(?:XL|S|M|L)|Q[2-8]_K|Q[4-8]_[01](?:_\d_\d)?"
    r"|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32|FP16|FP32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


def quant_from_name(name: str) -> str | None:
    """The quant type a file name advertises (``Q4_K_M``, ``IQ2_XXS``, ``F16``...), or None."""
    matches = _QUANT_RE.findall(PurePosixPath(name).name.replace(".", "-"))
    if not matches:
        return None
    quant = matches[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(quant, quant)


@dataclass(frozen=True)
class SplitPart:
    """Position of one shard in a ``<stem>-0000i-of-0000N.gguf`` split model."""

    stem: str
    index: int
    count: int


def split_part(name: str) -> SplitPart | None:
    """The shard position if ``name`` follows llama.cpp's split naming, else None."""
    match = _SPLIT_RE.match(name)
    if not match or int(match["count"]) < 1:
        return None
    return SplitPart(match["stem"], int(match["idx"]), int(match["count"]))


def part_index(name: str) -> int:
    """The shard number of a split file (1-based), 0 for a single file."""
    part = split_part(name)
    return part.index if part else 0


def model_key(name: str) -> str:
    """One key per model: a shard maps to its stem, a single file to its own name."""
    part = split_part(name)
    return f"{part.stem}.gguf" if part else name


def is_gguf(name: str) -> bool:
    """Whether a file name is a GGUF file (case-insensitive)."""
    return name.lower().endswith(".gguf")


def is_projector(name: str) -> bool:
    """Vision projectors (``mmproj-*.gguf``) are GGUFs but not models one can chat with."""
    return "mmproj" in PurePosixPath(name).name.lower()


def check_repo_filename(name: str) -> str:
    """Return ``name`` if it is a safe relative path inside a repo, else raise.

    A listing comes from a server Hearth does not control: a name with ``..``, an absolute
    path, a drive letter or a backslash could make a download write outside the cache.
    """
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or re.match(r"^[A-Za-z]:", name) is not None
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise UnsafeFilenameError(
            f"Refusing the repository file name {name!r}: it is not a plain relative path "
            f"(it could write outside the model cache); pick another file."
        )
    return name
