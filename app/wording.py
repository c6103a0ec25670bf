"""Words for counts, so the window never says "1 models"."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``plural(1, "model")`` -> "1 model"; ``plural(3, "reply", "replies")`` -> "3 replies"."""
    word = one if n == 1 else (many or f"{one}s")
    return f"{n:,} {word}"
