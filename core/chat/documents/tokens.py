"""Counting tokens with a model's own tokenizer: chunk sizes and the prompt budget.

A budget counted in characters or by a generic tokenizer drifts from what the model sees
(open-webui #13870 overflowed its context that way), so counts here come from llama.cpp's
tokenizer of the model itself, loaded through :class:`LoadedModel` with no GPU layers: the
weights are memory-mapped and never touched, so the load costs the vocabulary (about half a
second for Gemma 3's 262,144 tokens) and no VRAM.

Chunking always uses the bundled model's tokenizer (it is on every machine, so an index
never depends on which chat model happens to be loaded); the prompt budget uses the chat
model's.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from core.engine.api import ChatMessage, GenerationRequest
from core.engine.runtime.model import LoadedModel

# llama.cpp's SentencePiece tokenizer grows slower than linearly on very long inputs
# (0.24 MB/s on 755 KB in one call, 1.6 MB/s on 5 KB blocks): long text goes in blocks.
_BLOCK_CHARS = 4096


class Tokenizer(Protocol):
    """What the documents code needs from a tokenizer."""

    def count(self, text: str) -> int:
        """Tokens ``text`` takes inside a prompt (no BOS, special tokens not parsed)."""
        ...

    def line_counts(self, text: str) -> list[int]:
        """Tokens that start on each line of ``text`` (``text.split('\\n')`` lines); they
        add up to ``count(text)`` up to block boundaries."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` (cut at a token boundary) of ``max_tokens``."""
        ...

    def split(self, text: str, max_tokens: int) -> list[str]:
        """``text`` cut at token boundaries into pieces of at most ``max_tokens``."""
        ...


class ModelTokenizer:
    """A :class:`Tokenizer` over a model's vocabulary. Thread-safe (llama.cpp tokenizing is
    reentrant on a shared vocabulary, the piece cache is guarded)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.name = model.name
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> ModelTokenizer:
        """The tokenizer of the GGUF at ``path`` (vocabulary only in practice: no GPU
        layers, weights left unread in the memory map)."""
        return cls(LoadedModel(Path(path), n_gpu_layers=0, validate=False))

    def _ids(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=False)

    def count(self, text: str) -> int:
        return sum(len(self._ids(block)) for block in _blocks(text))

    def _piece_lengths(self, ids: list[int]) -> list[int]:
        with self._lock:
            return [len(self.model.piece(t)) for t in ids]

    def line_counts(self, text: str) -> list[int]:
        n_lines = text.count("\n") + 1
        counts = np.zeros(n_lines, dtype=np.int64)
        line = 0
        for block in _blocks(text):
            data = block.encode("utf-8")
            ids = self._ids(block)
            lengths = np.array(self._piece_lengths(ids), dtype=np.int64)
            if int(lengths.sum()) != len(data):  # pieces that do not spell the text: by share
                starts = np.arange(len(ids), dtype=np.int64) * len(data) // max(len(ids), 1)
            else:
                starts = np.cumsum(lengths) - lengths
            newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
            rows = line + np.searchsorted(newlines, starts, side="left")
            np.add.at(counts, np.minimum(rows, n_lines - 1), 1)
            line += len(newlines)
        return [int(c) for c in counts]

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        ids = self._ids(text)
        if len(ids) <= max_tokens:
            return text
        cut = sum(self._piece_lengths(ids[:max_tokens]))
        return text.encode("utf-8")[:cut].decode("utf-8", "ignore")

    def split(self, text: str, max_tokens: int) -> list[str]:
        pieces: list[str] = []
        for block in _blocks(text):
            data = block.encode("utf-8")
            lengths = self._piece_lengths(self._ids(block))
            if sum(lengths) != len(data):
                lengths = [len(data)]  # cannot map tokens to bytes: keep the block whole
            start = pos = 0
            for i, n in enumerate(lengths, start=1):
                pos += n
                if i % max_tokens == 0 or i == len(lengths):
                    cut = pos
                    while cut < len(data) and data[cut] & 0xC0 == 0x80:
                        cut += 1  # a byte-fallback token ended mid-character
                    if cut > start:
                        pieces.append(data[start:cut].decode("utf-8"))
                        start = cut
        return [p for p in pieces if p]

    def close(self) -> None:
        self.model.close()


def _blocks(text: str) -> list[str]:
    """``text`` cut after newlines into blocks of about ``_BLOCK_CHARS`` (whole lines
    where possible, so tokens rarely straddle a cut)."""
    if len(text) <= _BLOCK_CHARS:
        return [text]
    out, start = [], 0
    while start < len(text):
        end = min(start + _BLOCK_CHARS, len(text))
        if end < len(text):
            newline = text.rfind("\n", start, end)
            end = newline + 1 if newline > start else end
        out.append(text[start:end])
        start = end
    return out


_bundled: ModelTokenizer | None = None
_bundled_lock = threading.Lock()


def bundled_tokenizer() -> ModelTokenizer:
    """The bundled model's tokenizer, loaded once per process (chunking uses it)."""
    global _bundled
    with _bundled_lock:
        if _bundled is None:
            from core.models.bundled import default_model_path

            _bundled = ModelTokenizer.open(default_model_path())
        return _bundled


def prompt_tokens(tokenizer: Tokenizer, messages: list[ChatMessage]) -> int | None:
    """The exact prompt length of ``messages`` through the model's chat template (BOS and
    turn markers included), when the tokenizer is a model's; None otherwise."""
    if not isinstance(tokenizer, ModelTokenizer):
        return None
    from core.engine.runtime.prompt import PromptBuilder

    request = GenerationRequest(messages=messages)
    return len(PromptBuilder(tokenizer.model).build(request).tokens)
