"""Embedding models for documents: their retrieval conventions and the ``embed`` seam.

The engine computes vectors (``core.engine.runtime.embedding``: many texts per decode, in
the worker); this module only knows what retrieval needs on top: each model family was
trained with its own prefixes for questions and for passages, and vectors without them rank
noticeably worse. Chosen by the model's name and GGUF architecture:

- nomic-embed-text (``nomic-bert``): ``search_query: `` / ``search_document: ``
- bge-small/base/large English: the query instruction ``Represent this sentence for
  searching relevant passages: `` (passages bare); the Chinese bge models their own
- EmbeddingGemma (``gemma-embedding``): ``task: search result | query: `` /
  ``title: none | text: ``
- anything else (the bundled Gemma mean-pooled in tests, e5 without prefixes...): none
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Embed = Callable[[list[str]], np.ndarray]
"""Texts to L2-normalized float32 rows, one per text (the engine's embedding seam)."""

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


def conventions_for(name: str, architecture: str = "") -> tuple[str, str]:
    """(query prefix, document prefix) for an embedding model."""
    name, arch = name.lower(), architecture.lower()
    if "nomic" in name or arch.startswith("nomic-bert"):
        return "search_query: ", "search_document: "
    if arch == "gemma-embedding" or "embeddinggemma" in name.replace("-", ""):
        return "task: search result | query: ", "title: none | text: "
    if "bge" in name and ("-zh" in name or "_zh" in name):
        return BGE_ZH_QUERY, ""
    if "bge" in name and "bge-m3" not in name:
        return BGE_EN_QUERY, ""
    return "", ""


@dataclass(frozen=True)
class DocumentEmbedder:
    """An embedding model as the documents code uses it.

    ``identity`` is recorded with a collection's vectors: when a collection is indexed with a
    different one, its vectors are computed again (vectors of two models do not compare)."""

    identity: str
    embed: Embed
    query_prefix: str = ""
    document_prefix: str = ""
    batch: int = 32

    @classmethod
    def for_model(cls, name: str, architecture: str, embed: Embed,
                  identity: str | None = None) -> DocumentEmbedder:
        query, document = conventions_for(name, architecture)
        return cls(identity or name, embed, query, document)

    def documents(self, texts: list[str]) -> np.ndarray:
        return _rows(self.embed([self.document_prefix + t for t in texts]), len(texts))

    def query(self, text: str) -> np.ndarray:
        return _rows(self.embed([self.query_prefix + text]), 1)[0]


def _rows(vectors: np.ndarray, n: int) -> np.ndarray:
    """Check the engine's answer and normalize it (cosine similarity = dot product)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"the embedding model returned {matrix.shape} for {n} texts")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
