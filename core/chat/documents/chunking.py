"""Text to chunks of about N tokens that overlap, each knowing its page and line span.

Chunks are built from whole lines (a line longer than a chunk is cut at token boundaries),
so a citation's "lines 12-30" is exactly the text the model saw, and they never cross a page
(the page of a PDF citation is exact). Consecutive chunks share about ``overlap`` tokens of
lines so a sentence cut at a boundary is whole in one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.chat.documents.readers import Section
from core.chat.documents.tokens import Tokenizer

DEFAULT_CHUNK_TOKENS = 160
DEFAULT_OVERLAP = 32


@dataclass(frozen=True)
class Chunk:
    """One chunk; ``char_start``/``char_end`` index the section's text, lines are 1-based
    and inclusive, ``page`` is the section's."""

    text: str
    page: int | None
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    n_tokens: int


@dataclass(frozen=True)
class _Unit:
    text: str
    line: int
    start: int  # character offset in the section
    tokens: int


def _units(section: Section, tokenizer: Tokenizer, size: int) -> list[_Unit]:
    """The section's lines with their token counts; over-long lines cut into pieces."""
    lines = section.text.split("\n")
    counts = tokenizer.line_counts(section.text)
    units: list[_Unit] = []
    offset = 0
    for number, (line, tokens) in enumerate(zip(lines, counts, strict=True), start=1):
        text = line + ("\n" if number < len(lines) else "")
        if tokens <= size:
            units.append(_Unit(text, number, offset, tokens))
        else:
            start = offset
            pieces = tokenizer.split(text, size)
            for k, piece in enumerate(pieces):
                share = size if k < len(pieces) - 1 else max(1, tokens - size * k)
                units.append(_Unit(piece, number, start, min(share, size)))
                start += len(piece)
        offset += len(text)
    return units


def chunk_sections(sections: list[Section], tokenizer: Tokenizer,
                   size: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Every section's chunks, in reading order. Blank sections give none."""
    if size < 8 or not 0 <= overlap < size // 2 + 1:
        raise ValueError("chunk size must be >= 8 tokens and overlap at most half of it")
    out: list[Chunk] = []
    for section in sections:
        if not section.text.strip():
            continue
        units = _units(section, tokenizer, size)
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and (j == i or total + units[j].tokens <= size):
                total += units[j].tokens
                j += 1
            text = "".join(u.text for u in units[i:j])
            if text.strip():
                out.append(Chunk(text, section.page, units[i].line, units[j - 1].line,
                                 units[i].start, units[j - 1].start + len(units[j - 1].text),
                                 total))
            if j >= len(units):
                break
            # step back over the last lines until they hold ~overlap tokens (always move on)
            k, back = j, 0
            while k - 1 > i and back + units[k - 1].tokens <= overlap:
                k -= 1
                back += units[k].tokens
            i = k
    return out


def join_chunks(chunks: list[tuple[int | None, int, int, str]]) -> str:
    """A document's text again from its chunks ``(page, char_start, char_end, text)`` in
    order, the overlaps counted once (the whole document is sent when it fits)."""
    parts: list[str] = []
    page: object = object()
    end = 0
    for chunk_page, start, stop, text in chunks:
        if chunk_page != page:
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
            page, end = chunk_page, start
        skip = max(0, end - start)
        parts.append(text[skip:])
        end = max(end, stop)
    return "".join(parts)
