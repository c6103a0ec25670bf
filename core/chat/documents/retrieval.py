"""Hybrid retrieval: BM25 over words, trigrams for CJK, vectors, merged by reciprocal rank
fusion (k = 60), as GPT4All LocalDocs does.

RRF needs no score calibration between lists (BM25 and cosine scales have nothing in
common): a chunk's fused score is the sum over lists of 1 / (k + rank). Works with BM25
alone on first launch; vectors join when the collection has them from the embedder given.

What ``auto`` fuses is decided by the embedder's kind, not by weights fitted to questions:
RRF gives every list an equal vote, so it helps only when each list is good on its own. An
embedding model's list is (that is what it was trained for); a chat model's mean-pooled
states are not (docs bench: dense 0.23 recall@5, BM25 0.97, their RRF 0.65), so with a
generative embedder ``auto`` is BM25 and says why in ``notes``. Considered and not chosen:
dense as a re-ranker of BM25's top-N (a weak list then reorders the good one, the same
harm in another place) and a score-weighted mix (its weight must be fitted per model on
labelled questions a user's collection does not have). ``mode="hybrid"`` still runs RRF
over every list, whatever the embedder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.lexical import cjk_search, parse_query, word_search
from core.chat.documents.store import ChunkRow, Collection, DocumentStore
from core.chat.documents.vectors import VectorIndex

RRF_K = 60
Mode = Literal["auto", "bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk. ``score`` is higher for better: the fused RRF score when several
    lists ranked (hybrid), else that list's own (BM25, cosine); ``bm25`` and ``similarity``
    are the raw scores of the lists that found it."""

    chunk: ChunkRow
    score: float
    bm25: float | None = None
    similarity: float | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.chunk
        return {"source": c.path, "page": c.page, "lines": [c.line_start, c.line_end],
                "text": c.text, "score": round(self.score, 6), "collection": c.collection,
                "bm25": None if self.bm25 is None else round(self.bm25, 4),
                "similarity": None if self.similarity is None else round(self.similarity, 4)}


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str  # what ran: "bm25", "dense" or "hybrid"
    notes: list[str] = field(default_factory=list)  # why a list was left out, for the user
    fused: list[str] = field(default_factory=list)  # the lists ranked: words, cjk, vectors


def fuse(ranked: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of ranked id lists (rank 1 first)."""
    scores: dict[int, float] = {}
    for ids in ranked:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return scores


class Retriever:
    """Searches collections of a store; keeps the vector cache between queries."""

    def __init__(self, store: DocumentStore, embedder: DocumentEmbedder | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.vectors = VectorIndex(store)

    def _dense(self, collections: list[Collection], query: str, limit: int,
               notes: list[str], explicit: bool) -> tuple[list[tuple[int, float]], bool]:
        if self.embedder is None:
            if explicit:
                notes.append("no embedding model: keyword search only")
            return [], False
        if not explicit and self.embedder.kind != "embedding":
            notes.append(f"{self.embedder.name} is a generative model, not an embedding "
                         "model: its vectors are not fused (keyword search; ask for hybrid "
                         "or dense to use them)")
            return [], False
        usable = [c for c in collections if c.embed_model == self.embedder.identity]
        for c in collections:
            if c not in usable:
                notes.append(f"{c.name} has no vectors from {self.embedder.identity}; "
                             "reindex it to add them (keyword search meanwhile)")
        if not usable:
            return [], False
        vector = self.embedder.query(query)
        found: list[tuple[int, float]] = []
        for c in usable:
            found += self.vectors.search(c.id, vector, limit)
        found.sort(key=lambda kv: -kv[1])
        return found[:limit], True

    def search(self, names: list[str], query: str, top_k: int = 5, candidates: int = 50,
               mode: Mode = "auto") -> SearchResult:
        """The best ``top_k`` chunks of the named collections for ``query``."""
        collections = [self.store.collection(n) for n in names]
        ids = [c.id for c in collections]
        notes: list[str] = []
        pool = max(candidates, top_k)
        lexical = parse_query(query)
        words = word_search(self.store, ids, lexical, pool) if mode != "dense" else []
        cjk = cjk_search(self.store, ids, lexical, pool) if mode != "dense" else []
        dense, have_dense = ([], False) if mode == "bm25" else self._dense(
            collections, query, pool, notes, mode != "auto")
        named = [("words", words), ("cjk", cjk), ("vectors", dense)]
        lists = [[i for i, _ in found] for _, found in named if found]
        fused = fuse(lists)
        best = sorted(fused, key=lambda i: -fused[i])[:top_k]
        rows = self.store.chunks(best)
        bm25 = dict(words) | {i: s for i, s in cjk if i not in dict(words)}
        sims = dict(dense)
        ran = "dense" if mode == "dense" else ("hybrid" if have_dense else "bm25")
        # one list alone: its own score means more to a reader than 1 / (60 + rank)
        raw = dict(words or cjk or dense) if len(lists) == 1 else None
        hits = [Hit(rows[i], raw[i] if raw is not None else fused[i], bm25.get(i), sims.get(i))
                for i in best if i in rows]
        return SearchResult(hits, ran, notes, [name for name, found in named if found])
