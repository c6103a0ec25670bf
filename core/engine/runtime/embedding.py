"""Embeddings on llama.cpp: many texts per ``llama_decode``, one pooled vector per text.

Each text is one sequence of a batch (seq id = its place in the batch), so a batch of short
chunks costs one graph evaluation instead of one per chunk. The pooling comes from the GGUF
(``<arch>.pooling_type``: embedding models such as nomic-embed-text, bge or EmbeddingGemma
carry it); a model that carries none (a chat model such as the bundled Gemma) is pooled by
the mean of its token states, which is weak for retrieval but real. Vectors are returned
L2-normalized, so a dot product is the cosine similarity.

The weights can be shared with a loaded generation model (``model=``): the embedding context
is a second context over the same ``llama_model``, costing only its own buffers.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import numpy as np

from core import llama_log
from core.engine.runtime.context import Batch
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.resources import default_threads
from core.errors import ConfigError, ContextTooLargeError, EngineError

POOLING = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN, "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
           "last": llama_cpp.LLAMA_POOLING_TYPE_LAST}
_POOLING_NAMES = {v: k for k, v in POOLING.items()}


class Embedder:
    """Owns an embedding context (and the model, unless one is lent). ``max_tokens`` is the
    longest text kept (longer ones are cut: every token of a sequence must fit in one
    ubatch for non-causal models); ``n_seq_max`` how many texts share a decode."""

    def __init__(self, model_path: Path | None = None, *, model: LoadedModel | None = None,
                 pooling: str | None = None, max_tokens: int = 512, n_batch: int = 2048,
                 n_seq_max: int = 32, threads: int | None = None, n_gpu_layers: int = 0) -> None:
        if model is None and model_path is None:
            raise ConfigError("An embedder needs a model file or a loaded model.")
        if pooling is not None and pooling not in POOLING:
            raise ConfigError(f"Unknown pooling {pooling!r}; use mean, cls or last.")
        self._owns_model = model is None
        self.model = model or LoadedModel(Path(model_path or ""), n_gpu_layers)
        self.pooling = pooling or self._gguf_pooling() or "mean"
        self.max_tokens = max(8, min(max_tokens, n_batch))
        self.n_batch = max(n_batch, self.max_tokens)
        self.n_seq_max = max(1, n_seq_max)
        params = llama_cpp.llama_context_default_params()
        params.embeddings = True
        params.pooling_type = POOLING[self.pooling]
        params.n_ctx = self.n_batch
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = self.n_seq_max
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads or default_threads()
        params.no_perf = True
        position = llama_log.mark()
        ctx = llama_cpp.llama_init_from_model(self.model.ptr, params)
        if not ctx:
            reason = "; ".join(llama_log.errors_since(position)[-2:]) or "no reason given"
            self.close()
            raise ContextTooLargeError(
                f"Could not create an embedding context for {self.model.path.name} ({reason}).")
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.dim = int(llama_cpp.llama_model_n_embd(self.model.ptr))
        self._batch = Batch(self.n_batch)

    def _gguf_pooling(self) -> str | None:
        value = self.model.meta(f"{self.model.architecture}.pooling_type")
        try:
            return _POOLING_NAMES.get(int(value)) if value is not None else None
        except ValueError:
            return None

    @property
    def name(self) -> str:
        return self.model.path.name

    def tokens(self, text: str) -> list[int]:
        """The tokens a text is embedded from (cut to ``max_tokens``)."""
        ids = self.model.tokenize(text, add_special=True, parse_special=False)
        return (ids or [max(self.model.bos, 0)])[: self.max_tokens]

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalized float32 row per text, in order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        group: list[tuple[int, list[int]]] = []
        used = 0
        for index, text in enumerate(texts):
            ids = self.tokens(text)
            if group and (used + len(ids) > self.n_batch or len(group) >= self.n_seq_max):
                self._run(group, out)
                group, used = [], 0
            group.append((index, ids))
            used += len(ids)
        if group:
            self._run(group, out)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def _run(self, group: list[tuple[int, list[int]]], out: np.ndarray) -> None:
        batch = self._batch
        batch.clear()
        for seq_id, (_, ids) in enumerate(group):
            batch.add_run(ids, 0, seq_id, True)
            for i in range(batch.n - len(ids), batch.n):  # pooled: every token is an output
                batch.ptr.logits[i] = 1
        if self.mem:
            llama_cpp.llama_memory_clear(self.mem, True)
        rc = llama_cpp.llama_decode(self.ctx, batch.ptr)
        if rc != 0:
            raise EngineError(f"llama.cpp failed to compute embeddings (code {rc}).")
        for seq_id, (index, _) in enumerate(group):
            ptr = llama_cpp.llama_get_embeddings_seq(self.ctx, seq_id)
            if not ptr:
                raise EngineError("llama.cpp returned no pooled embedding for a text.")
            row = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
            out[index] = np.ctypeslib.as_array(row, shape=(self.dim,))

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            self._batch.close()
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self._owns_model and getattr(self, "model", None) is not None:
            self.model.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
