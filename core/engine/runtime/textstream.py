"""Bytes from the token loop to text events: whole UTF-8 characters, stop strings honoured.

A token can end in the middle of a multi-byte character (emoji, CJK are split across byte
tokens), so bytes go through an incremental decoder that holds an incomplete sequence back.
Text that might be the start of a stop string is also held back until it either completes
the stop string (the reply ends there, the stop string is not shown) or stops matching.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Feed token bytes in; get the text that is safe to show out."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False
        self.text = ""  # everything emitted so far

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that can be emitted now ("" if none).
        After a stop string completes, ``stopped`` is True and later input is ignored."""
        if self.stopped:
            return ""
        new = self._decoder.decode(data)
        if not new:
            return ""
        if not self._stop:
            self.text += new
            return new
        pending = self._held + new
        cut = min((i for i in (pending.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            out = pending[:cut]
        else:
            keep = self._longest_stop_prefix_suffix(pending)
            out, self._held = pending[: len(pending) - keep], pending[len(pending) - keep :]
        self.text += out
        return out

    def flush(self) -> str:
        """End of generation: release held text (an unfinished stop string is just text).
        Bytes of a character the generation cut off midway are dropped, not shown as U+FFFD."""
        self._decoder.reset()
        if self.stopped:
            return ""
        out, self._held = self._held, ""
        self.text += out
        return out

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if stop.startswith(text[-n:]):
                    best = n
                    break
        return best
