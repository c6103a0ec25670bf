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

Each embedder also has a *kind*. An embedding model (its GGUF carries a pooling type, or an
encoder architecture such as bert / nomic-bert, or a known embedding name) was trained so
that a question lands near its answer; a chat or base model's mean-pooled token states were
not (the bundled Gemma 3 270M: recall@5 0.23 on the docs bench, against BM25's 0.97), and
fusing such a list with BM25 by rank drags the good list down (hybrid 0.65). So search
fuses vectors by default only from an embedding model; a generative model's vectors are
used when asked for (``mode="dense"``/``"hybrid"``), never silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Embed = Callable[[list[str]], np.ndarray]
"""Texts to L2-normalized float32 rows, one per text (the engine's embedding seam)."""

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："

Kind = Literal["embedding", "generative"]
EMBEDDING_ARCHITECTURES = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert",
    "modern-bert", "gemma-embedding", "t5encoder",
})


def is_embedding_model(name: str, architecture: str | None, has_pooling: bool = False) -> bool:
    """An embedding model by its GGUF: a pooling type key (``<arch>.pooling_type``, which
    llama.cpp's converter writes only for sentence-embedding models), an encoder
    architecture, or an embedding model's name (Qwen3-Embedding is a ``qwen3``)."""
    return has_pooling or (architecture or "") in EMBEDDING_ARCHITECTURES or \
        "embed" in name.lower()


def kind_of(name: str, architecture: str | None, has_pooling: bool = False) -> Kind:
    return "embedding" if is_embedding_model(name, architecture, has_pooling) else "generative"


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
    kind: Kind = "embedding"  # "generative": vectors not fused unless asked (module doc)

    @classmethod
    def for_model(cls, name: str, architecture: str, embed: Embed,
                  identity: str | None = None, has_pooling: bool = False) -> DocumentEmbedder:
        query, document = conventions_for(name, architecture)
        return cls(identity or name, embed, query, document,
                   kind=kind_of(name, architecture, has_pooling))

    @property
    def name(self) -> str:
        """The model file's name, for messages (``identity`` is ``path#size``)."""
        path = self.identity.rpartition("#")[0] or self.identity
        return path.replace("\\", "/").rsplit("/", 1)[-1]

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
