"""The documents store: collections, their folders and files, chunks, vectors, in SQLite.

Like the chat history: WAL with ``synchronous=NORMAL`` (every committed transaction survives
a kill), one connection behind a lock, called off the GUI thread. Each indexed file is one
transaction (its chunks, both FTS indexes through triggers, its row with size, mtime and
hash), so indexing killed mid-way resumes where it stopped, with nothing twice and nothing
lost. Each collection carries a ``generation`` bumped by every write, so an in-memory cache
of its vectors (``core.chat.documents.vectors``) sees changes made by another process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.chat.documents.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP, Chunk
from core.chat.documents.errors import DocumentsError
from core.chat.documents.schema import SCHEMA_VERSION, migrate
from core.paths import hearth_home


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    chunk_tokens: int
    chunk_overlap: int
    embed_model: str  # identity of the model its vectors come from; "" = none yet
    generation: int


@dataclass(frozen=True)
class CollectionStats:
    collection: Collection
    roots: list[str]
    files: int
    failed: int
    chunks: int
    embedded: int
    bytes: int


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    n_chunks: int
    n_tokens: int
    error: str | None


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with where it came from."""

    id: int
    file_id: int
    collection: str
    path: str
    ord: int
    page: int | None
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    n_tokens: int
    text: str


_CHUNK_COLUMNS = ("c.id, c.file_id, k.name, f.path, c.ord, c.page, c.line_start, c.line_end, "
                  "c.char_start, c.char_end, c.n_tokens, c.text")
_CHUNK_FROM = ("chunks c JOIN files f ON f.id = c.file_id "
               "JOIN collections k ON k.id = f.collection_id")


def default_store_path() -> Path:
    return hearth_home() / "documents.sqlite3"


class DocumentStore:
    """Thread-safe; every method is one short transaction or read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._lock:
                version = migrate(self._db)
        except sqlite3.DatabaseError as err:
            raise DocumentsError(f"The documents index at {self.path} cannot be opened ({err}); "
                                 "move the file away and add your folders again.") from err
        if version > SCHEMA_VERSION:
            raise DocumentsError(f"The documents index at {self.path} was written by a newer "
                                 f"Hearth (schema {version}); update Hearth to open it.")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- collections -------------------------------------------------------------------
    def create_collection(self, name: str, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                          chunk_overlap: int = DEFAULT_OVERLAP) -> Collection:
        name = name.strip()
        if not name:
            raise DocumentsError("A collection needs a name.")
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO collections (name, created, chunk_tokens, chunk_overlap)"
                           " VALUES (?, ?, ?, ?)", (name, time.time(), chunk_tokens,
                                                    chunk_overlap))
        except sqlite3.IntegrityError:
            raise DocumentsError(f"A collection named {name!r} already exists.") from None
        return self.collection(name)

    def find_collection(self, name: str) -> Collection | None:
        rows = self.query("SELECT id, name, chunk_tokens, chunk_overlap, embed_model, generation"
                          " FROM collections WHERE name = ?", (name.strip(),))
        return Collection(*rows[0]) if rows else None

    def collection(self, name: str) -> Collection:
        found = self.find_collection(name)
        if found is None:
            known = ", ".join(c.name for c in self.collections()) or "none yet"
            raise DocumentsError(f"There is no collection named {name!r} (collections: "
                                 f"{known}); create one with 'hearth-cli docs add NAME PATH'.")
        return found

    def collections(self) -> list[Collection]:
        rows = self.query("SELECT id, name, chunk_tokens, chunk_overlap, embed_model, generation"
                          " FROM collections ORDER BY name")
        return [Collection(*r) for r in rows]

    def stats(self, collection: Collection) -> CollectionStats:
        files, failed, size = self.query(
            "SELECT COUNT(*), COUNT(error), COALESCE(SUM(size), 0) FROM files "
            "WHERE collection_id = ?", (collection.id,))[0]
        chunks, embedded = self.query(
            "SELECT COUNT(*), COUNT(c.vector) FROM chunks c JOIN files f ON f.id = c.file_id "
            "WHERE f.collection_id = ?", (collection.id,))[0]
        return CollectionStats(collection, self.roots(collection), files, failed, chunks,
                               embedded, size)

    def remove_collection(self, name: str) -> None:
        collection = self.collection(name)
        with self.transaction() as db:
            # chunks first, so their delete triggers keep both FTS indexes in step
            db.execute("DELETE FROM chunks WHERE file_id IN "
                       "(SELECT id FROM files WHERE collection_id = ?)", (collection.id,))
            db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    def bump(self, db: sqlite3.Connection, collection_id: int) -> None:
        db.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?",
                   (collection_id,))

    # -- roots -------------------------------------------------------------------------
    def add_roots(self, collection: Collection, paths: Iterable[Path]) -> None:
        with self.transaction() as db:
            for path in paths:
                db.execute("INSERT OR IGNORE INTO roots (collection_id, path) VALUES (?, ?)",
                           (collection.id, str(Path(path).expanduser().resolve())))

    def remove_root(self, collection: Collection, path: Path) -> None:
        """Forget a folder or file and everything indexed from it."""
        root = str(Path(path).expanduser().resolve())
        with self.transaction() as db:
            db.execute("DELETE FROM roots WHERE collection_id = ? AND path = ?",
                       (collection.id, root))
            ids = [r[0] for r in db.execute(
                "SELECT id FROM files WHERE collection_id = ? AND (path = ? OR path LIKE ?)",
                (collection.id, root, root.rstrip("/") + "/%"))]
            self._delete_files(db, collection.id, ids)

    def roots(self, collection: Collection) -> list[str]:
        return [r[0] for r in self.query("SELECT path FROM roots WHERE collection_id = ? "
                                         "ORDER BY path", (collection.id,))]

    # -- files -------------------------------------------------------------------------
    def files(self, collection: Collection) -> dict[str, FileRow]:
        rows = self.query("SELECT id, path, size, mtime_ns, sha256, n_chunks, n_tokens, error "
                          "FROM files WHERE collection_id = ?", (collection.id,))
        return {r[1]: FileRow(*r) for r in rows}

    def replace_file(self, collection: Collection, path: str, size: int, mtime_ns: int,
                     sha256: str, chunks: list[Chunk], error: str | None = None) -> None:
        """Store a file's chunks (or its read error) in place of what it had, at once."""
        n_tokens = sum(c.n_tokens for c in chunks)
        with self.transaction() as db:
            old = db.execute("SELECT id FROM files WHERE collection_id = ? AND path = ?",
                             (collection.id, path)).fetchone()
            if old is not None:
                db.execute("DELETE FROM chunks WHERE file_id = ?", (old[0],))
                db.execute("UPDATE files SET size=?, mtime_ns=?, sha256=?, n_chunks=?, "
                           "n_tokens=?, error=?, indexed=? WHERE id=?",
                           (size, mtime_ns, sha256, len(chunks), n_tokens, error, time.time(),
                            old[0]))
                file_id = old[0]
            else:
                file_id = db.execute(
                    "INSERT INTO files (collection_id, path, size, mtime_ns, sha256, n_chunks, "
                    "n_tokens, error, indexed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (collection.id, path, size, mtime_ns, sha256, len(chunks), n_tokens, error,
                     time.time())).lastrowid
            db.executemany(
                "INSERT INTO chunks (file_id, ord, page, line_start, line_end, char_start, "
                "char_end, n_tokens, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(file_id, i, c.page, c.line_start, c.line_end, c.char_start, c.char_end,
                  c.n_tokens, c.text) for i, c in enumerate(chunks)])
            self.bump(db, collection.id)

    def touch_file(self, file_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new mtime (a copy, a save without changes): nothing re-chunked."""
        with self.transaction() as db:
            db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                       (size, mtime_ns, file_id))

    def delete_files(self, collection: Collection, file_ids: list[int]) -> None:
        with self.transaction() as db:
            self._delete_files(db, collection.id, file_ids)

    def _delete_files(self, db: sqlite3.Connection, collection_id: int,
                      file_ids: list[int]) -> None:
        for file_id in file_ids:
            db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        if file_ids:
            self.bump(db, collection_id)

    # -- chunks ------------------------------------------------------------------------
    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for row in self.query(f"SELECT {_CHUNK_COLUMNS} FROM {_CHUNK_FROM} "
                                  f"WHERE c.id IN ({marks})", part):
                out[row[0]] = ChunkRow(*row)
        return out

    def file_chunks(self, file_id: int) -> list[ChunkRow]:
        rows = self.query(f"SELECT {_CHUNK_COLUMNS} FROM {_CHUNK_FROM} WHERE c.file_id = ? "
                          "ORDER BY c.ord", (file_id,))
        return [ChunkRow(*r) for r in rows]

    def file_tokens(self, file_id: int) -> int:
        rows = self.query("SELECT n_tokens FROM files WHERE id = ?", (file_id,))
        return int(rows[0][0]) if rows else 0

    # -- chats -------------------------------------------------------------------------
    def chat_collections(self, chat_id: int) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT k.name FROM chat_collections x JOIN collections k ON k.id = x.collection_id "
            "WHERE x.chat_id = ? ORDER BY k.name", (chat_id,))]

    def set_chat_collections(self, chat_id: int, names: list[str]) -> None:
        ids = [self.collection(n).id for n in names]
        with self.transaction() as db:
            db.execute("DELETE FROM chat_collections WHERE chat_id = ?", (chat_id,))
            db.executemany("INSERT INTO chat_collections VALUES (?, ?)",
                           [(chat_id, i) for i in ids])

    # -- settings ----------------------------------------------------------------------
    def setting(self, key: str, default: str) -> str:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (f"setting.{key}",))
        return str(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (f"setting.{key}",))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"setting.{key}", value))

    def integrity_check(self) -> str:
        return str(self.query("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
