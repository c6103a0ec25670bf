"""Stored vectors: filled in batches after the text is indexed, scored with numpy.

Text first, vectors after: keyword search works as soon as a file is indexed, and computing
vectors (the slow part) is resumable on its own, since the chunks still to embed are the
ones whose vector is NULL. Scoring is one matrix-vector product over a collection's vectors,
cached in memory per collection and reloaded when its ``generation`` moves (another process
may have indexed meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.store import Collection, DocumentStore


def use_embedder(store: DocumentStore, collection: Collection, identity: str) -> bool:
    """Record the collection's embedding model; when it changes, forget the old vectors so
    they are computed again. Returns True when they were reset."""
    if collection.embed_model == identity:
        return False
    with store.transaction() as db:
        db.execute("UPDATE chunks SET vector = NULL WHERE vector IS NOT NULL AND file_id IN "
                   "(SELECT id FROM files WHERE collection_id = ?)", (collection.id,))
        db.execute("UPDATE collections SET embed_model = ? WHERE id = ?",
                   (identity, collection.id))
        store.bump(db, collection.id)
    return True


def pending_count(store: DocumentStore, collection: Collection) -> int:
    return int(store.query("SELECT COUNT(*) FROM chunks c JOIN files f ON f.id = c.file_id "
                           "WHERE f.collection_id = ? AND c.vector IS NULL",
                           (collection.id,))[0][0])


def embed_pending(store: DocumentStore, collection: Collection, embedder: DocumentEmbedder,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] = lambda: False) -> int:
    """Compute the missing vectors, a batch per transaction; returns how many were made."""
    total, done = pending_count(store, collection), 0
    while not cancelled():
        rows = store.query("SELECT c.id, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
                           "WHERE f.collection_id = ? AND c.vector IS NULL ORDER BY c.id "
                           "LIMIT ?", (collection.id, embedder.batch))
        if not rows:
            break
        vectors = embedder.documents([text for _, text in rows])
        with store.transaction() as db:
            db.executemany("UPDATE chunks SET vector = ? WHERE id = ?",
                           [(v.astype(np.float32).tobytes(), i)
                            for (i, _), v in zip(rows, vectors, strict=True)])
            store.bump(db, collection.id)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    return done


class VectorIndex:
    """Cosine search over stored vectors (thread-safe)."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self._cache: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def _matrix(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        generation = int(self.store.query("SELECT generation FROM collections WHERE id = ?",
                                          (collection_id,))[0][0])
        with self._lock:
            cached = self._cache.get(collection_id)
            if cached is not None and cached[0] == generation:
                return cached[1], cached[2]
        rows = self.store.query("SELECT c.id, c.vector FROM chunks c JOIN files f ON "
                                "f.id = c.file_id WHERE f.collection_id = ? AND c.vector IS "
                                "NOT NULL ORDER BY c.id", (collection_id,))
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if rows:
            matrix = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            self._cache[collection_id] = (generation, ids, matrix)
        return ids, matrix

    def search(self, collection_id: int, query: np.ndarray,
               limit: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity), best first."""
        ids, matrix = self._matrix(collection_id)
        if not len(ids) or matrix.shape[1] != query.shape[0]:
            return []
        scores = matrix @ query.astype(np.float32)
        k = min(limit, len(ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(ids[i]), float(scores[i])) for i in top]
