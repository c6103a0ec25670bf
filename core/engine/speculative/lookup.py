"""Prompt lookup: draft tokens by copying what followed the same n-gram earlier.

Answers about a document, code edits and summaries repeat long runs of their context. If
the last few tokens already appeared earlier in the prompt or the output, the tokens that
followed them then are a good guess for what follows now, and guessing costs nothing: no
second model. The target verifies the guess like any draft, so a wrong guess costs only
the extra positions in one verification batch.

The index maps each n-gram (``MIN_NGRAM``..``MAX_NGRAM`` tokens) to the position right
after its most recent occurrence whose continuation is known. It is updated as tokens are
committed, one dictionary insert per size per token, so a lookup never scans the history.
Longer n-grams are tried first (fewer false matches); the most recent occurrence wins
(recent text predicts better, and in a quoting answer the source is the one match).
"""

from __future__ import annotations

MAX_NGRAM = 4
MIN_NGRAM = 2


class PromptLookup:
    """A draft source over one request's token history (prompt + committed output)."""

    def __init__(self, max_ngram: int = MAX_NGRAM, min_ngram: int = MIN_NGRAM) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError("need 1 <= min_ngram <= max_ngram")
        self.sizes = tuple(range(max_ngram, min_ngram - 1, -1))
        self._history: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}

    def begin(self, tokens: list[int]) -> None:
        """Start a request whose history is ``tokens`` (the prompt)."""
        self._history = []
        self._index = {}
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        """Commit ``tokens`` to the history and index the n-grams they complete."""
        hist, index, sizes = self._history, self._index, self.sizes
        for token in tokens:
            end = len(hist)  # the n-grams ending just before `token` now have a continuation
            for n in sizes:
                if end >= n:
                    index[tuple(hist[end - n : end])] = end
            hist.append(token)

    @property
    def history(self) -> list[int]:
        return self._history

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest recent match of the history's tail
        (empty when nothing matches)."""
        hist = self._history
        for n in self.sizes:
            if len(hist) <= n:
                continue
            start = self._index.get(tuple(hist[-n:]))
            if start is not None:
                return hist[start : start + k]
        return []
