"""Markdown arriving in pieces, cut into blocks as it comes: no Qt, O(piece) per feed.

The transcript renders a finished block once and never again, so what it must know after
each piece is which blocks just finished and what the growing block holds. A prose block
ends at a blank line or where a code fence opens; a fenced code block ends at its closing
fence (so code freezes as soon as it is complete, and lives in its own widget that scrolls
sideways instead of widening the message).
"""

from __future__ import annotations

from dataclasses import dataclass

FENCES = ("```", "~~~")


def is_fence(line: str) -> bool:
    return line.lstrip().startswith(FENCES)


@dataclass(frozen=True)
class Block:
    """One finished block: ``code`` blocks keep their fence lines (``language`` from the
    opening one); ``prose`` is everything else, rendered as Markdown."""

    kind: str  # "prose" or "code"
    text: str

    @property
    def language(self) -> str:
        return self.text.split("\n", 1)[0].strip().lstrip("`~").strip() if self.kind == "code" \
            else ""

    @property
    def code(self) -> str:
        """A code block's content, without its fence lines."""
        lines = self.text.split("\n")[1:]
        if lines and is_fence(lines[-1]):
            lines = lines[:-1]
        return "\n".join(lines)


class BlockSplitter:
    """Feed text in pieces; each :meth:`feed` returns the blocks it finished.

    Only whole lines are examined, and each once, so a feed costs the size of the piece
    (plus the line it completes), at token 20 as at token 2,000."""

    def __init__(self) -> None:
        self._lines: list[str] = []  # complete lines of the growing block
        self._line = ""  # the line still growing (no newline yet)
        self._fence = False
        self.chars = 0  # characters in the growing block's complete lines (with newlines)
        self.continued = True  # the last feed only added to the growing block

    @property
    def in_code(self) -> bool:
        """True while the growing block is a fenced code block."""
        return self._fence

    @property
    def growing_lines(self) -> list[str]:
        """The growing block's complete lines (the current line excluded)."""
        return self._lines

    @property
    def current_line(self) -> str:
        return self._line

    def growing(self) -> str:
        """The whole growing block as text (O(block): for tests and rebuilds)."""
        return "\n".join([*self._lines, self._line]) if self._lines else self._line

    def feed(self, piece: str) -> list[Block]:
        finished: list[Block] = []
        self.continued = True
        parts = piece.split("\n")
        self._line += parts[0]
        for part in parts[1:]:
            self._end_line(finished)
            self._line = part
        return finished

    def finish(self) -> list[Block]:
        """The reply ended: the growing block (and its unfinished line) is finished too."""
        finished: list[Block] = []
        if self._line:
            self._end_line(finished)
        if self._lines:
            finished.append(self._take("code" if self._fence else "prose"))
        self._fence = False
        return finished

    def _take(self, kind: str) -> Block:
        self.continued = False
        block = Block(kind, "\n".join(self._lines))
        self._lines, self.chars = [], 0
        return block

    def _end_line(self, finished: list[Block]) -> None:
        line, self._line = self._line, ""
        if self._fence:
            self._push(line)
            if is_fence(line) and len(self._lines) > 1:  # the closing fence
                self._fence = False
                finished.append(self._take("code"))
            return
        if is_fence(line):  # a fence opens: the prose before it is a block of its own
            if self._lines:
                finished.append(self._take("prose"))
            self._fence = True
            self.continued = False
            self._push(line)
            return
        if not line.strip():
            if self._lines:
                finished.append(self._take("prose"))
            self.continued = False  # a blank line is no block's
            return
        self._push(line)

    def _push(self, line: str) -> None:
        self._lines.append(line)
        self.chars += len(line) + 1


def split_blocks(text: str) -> tuple[list[Block], str]:
    """``text`` as its finished blocks and the growing block's text (one-shot form)."""
    splitter = BlockSplitter()
    blocks = splitter.feed(text)
    return blocks, splitter.growing()
