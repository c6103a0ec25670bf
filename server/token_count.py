"""Token counts for ``usage`` where the engine reports none (embeddings), with the model's
own tokenizer.

The engine's embedder returns vectors only, so the server counts in its own process: the
model's vocabulary is loaded without its weights (``vocab_only``: the metadata and the
token table, no tensor is read), once per model file, and each input is tokenized the way
:class:`~core.engine.runtime.embedding.Embedder` tokenizes it (special tokens added, not
parsed; at least one token; cut at the embedder's limit), so ``usage`` counts exactly the
tokens that were embedded. Blocking: call it from a thread, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import llama_cpp

from core import llama_log
from core.engine.runtime.embedding import Embedder

log = logging.getLogger("hearth.server")
# The embedder's cut (its ``max_tokens`` default, as the worker builds it).
EMBED_MAX_TOKENS: int = (Embedder.__init__.__kwdefaults__ or {}).get("max_tokens", 512)
KEEP = 4  # vocabularies kept (a pool serves several models)


class TokenCounter:
    """Vocabulary-only models by path, least recently used dropped past :data:`KEEP`.
    Thread-safe: one lock covers loading, tokenizing and freeing."""

    def __init__(self) -> None:
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def embedding_inputs(self, path: str | Path, texts: list[str]) -> int | None:
        """Tokens the embedder evaluates for ``texts``; None when the vocabulary cannot
        be read (the reason is logged; the vectors are still answered)."""
        with self._lock:
            vocab = self._vocab(str(path))
            if vocab is None:
                return None
            return sum(max(1, min(_count(vocab, t), EMBED_MAX_TOKENS)) for t in texts)

    def _vocab(self, path: str) -> Any:
        model = self._models.get(path)
        if model is None:
            model = _load(path)
            if model is None:
                return None
            self._models[path] = model
            while len(self._models) > KEEP:
                llama_cpp.llama_model_free(self._models.popitem(last=False)[1])
        self._models.move_to_end(path)
        return llama_cpp.llama_model_get_vocab(model)

    def close(self) -> None:
        with self._lock:
            while self._models:
                llama_cpp.llama_model_free(self._models.popitem()[1])


def _load(path: str) -> Any:
    llama_log.install()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.n_gpu_layers = 0
    position = llama_log.mark()
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        reason = "; ".join(llama_log.errors_since(position)[-1:]) or "no reason given"
        log.error("server: cannot read the vocabulary of %s to count tokens (%s)", path,
                  reason)
        return None
    return model


def _count(vocab: Any, text: str) -> int:
    data = text.encode("utf-8")
    cap = len(data) + 8
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, True, False)
    if n < 0:
        buf = (llama_cpp.llama_token * -n)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, -n, True, False)
    return max(n, 0)
