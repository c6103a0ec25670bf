"""What a documents prompt cites: numbered sources, and ``[n]`` in a reply mapped back.

Numbers are given to the passages in the order they sit in the prompt, and a reply's
markers are resolved only against those: a number the prompt never had is reported as
unknown rather than pinned to some other chunk (anything-llm #2027 showed citations at the
wrong places).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    """A passage that went into the prompt as ``[n]``: a chunk, a cut chunk, or a whole
    document (``chunk_ids`` lists every chunk it covers)."""

    n: int
    path: str
    page: int | None
    lines: tuple[int, int]
    text: str
    chunk_ids: tuple[int, ...]
    collection: str
    score: float
    kind: str = "chunk"  # "chunk", "document" (the whole file) or "cut" (shortened to fit)
    pages: tuple[int, int] | None = None  # a whole PDF's first and last page

    def label(self, name: str | None = None) -> str:
        """How the prompt names it: ``report.pdf, page 3, lines 4-12``."""
        parts = [name or Path(self.path).name]
        if self.kind == "document":
            parts.append("whole document")
        elif self.page is not None:
            parts.append(f"page {self.page}")
        if self.kind != "document":
            a, b = self.lines
            parts.append(f"line {a}" if a == b else f"lines {a}-{b}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "source": self.path, "page": self.page, "lines": list(self.lines),
                "text": self.text, "kind": self.kind, "collection": self.collection,
                "score": round(self.score, 6), "chunk_ids": list(self.chunk_ids)}


@dataclass(frozen=True)
class Citations:
    cited: list[Source]  # in order of first mention
    unknown: list[int]  # numbers the reply used that no passage had


_MARKER = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")


def _numbers(marker: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*,\s*", marker):
        if re.search(r"[-–]", part):
            a, b = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            out += list(range(a, b + 1)) if 0 <= b - a <= 50 else [a, b]
        else:
            out.append(int(part))
    return out


def resolve_citations(reply: str, sources: list[Source]) -> Citations:
    """The sources a reply cites with ``[1]``, ``[1, 3]``, ``[2-4]``, ``[1][2]``."""
    by_number = {s.n: s for s in sources}
    cited: dict[int, Source] = {}
    unknown: list[int] = []
    for match in _MARKER.finditer(reply):
        for n in _numbers(match.group(1)):
            if n in by_number:
                cited.setdefault(n, by_number[n])
            elif n not in unknown:
                unknown.append(n)
    return Citations(list(cited.values()), unknown)


def display_names(sources: list[Source]) -> dict[int, str]:
    """A short name per source: the file name, with its folder where two share a name."""
    names = {s.n: Path(s.path).name for s in sources}
    paths: dict[str, set[str]] = {}
    for s in sources:
        paths.setdefault(Path(s.path).name, set()).add(s.path)
    for s in sources:
        if len(paths[Path(s.path).name]) > 1:
            p = Path(s.path)
            names[s.n] = f"{p.parent.name}/{p.name}"
    return names
