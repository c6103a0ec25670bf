"""Chat history in SQLite: chats, messages and each reply's metrics.

WAL journal with ``synchronous=NORMAL``: every committed transaction survives the app being
killed (only a power cut can lose the last ones), and readers never block the writer. A
streaming reply is saved as it grows (``update_message`` with ``complete=False``) so a crash
loses at most the last save interval. The schema carries a version; older databases are
migrated forward and a newer one is refused rather than damaged.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HearthError
from core.paths import hearth_home, private_file

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 1,
    finish_reason TEXT,
    error TEXT,
    metrics TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
"""


class HistoryError(HearthError):
    """The history database cannot be used."""


@dataclass
class Chat:
    id: int
    title: str
    system_prompt: str
    model: str
    created: float
    updated: float


@dataclass
class Message:
    id: int
    chat_id: int
    role: str
    content: str
    complete: bool = True
    finish_reason: str | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = field(default=None)
    created: float = 0.0


def default_history_path() -> Path:
    return hearth_home() / "history.sqlite3"


class HistoryStore:
    """Thread-safe (one connection behind a lock); call it off the GUI thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            with contextlib.suppress(OSError):  # sqlite says why if the file is unusable
                private_file(self.path)  # 0600 before the first chat lands; -wal/-shm follow
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise HistoryError(f"The chat history at {self.path} cannot be opened ({err}); "
                               "move the file away to start a new history.") from err

    def _migrate(self) -> None:
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise HistoryError(f"The chat history at {self.path} was written by a newer Hearth "
                               f"(schema {version}); update Hearth to open it.")
        if version < SCHEMA_VERSION:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))

    class _Tx:
        def __init__(self, store: HistoryStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:  # a closed or broken database: the lock must not leak
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, exc_type: object, *_: object) -> None:
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _tx(self) -> HistoryStore._Tx:
        return HistoryStore._Tx(self)

    # -- chats -------------------------------------------------------------------------
    def create_chat(self, title: str = "New chat", system_prompt: str = "",
                    model: str = "") -> Chat:
        now = time.time()
        with self._tx() as db:
            cur = db.execute("INSERT INTO chats (title, system_prompt, model, created, updated) "
                             "VALUES (?, ?, ?, ?, ?)", (title, system_prompt, model, now, now))
            chat_id = int(cur.lastrowid or 0)
        return Chat(chat_id, title, system_prompt, model, now, now)

    def list_chats(self, search: str = "") -> list[Chat]:
        """Most recently updated first; ``search`` matches titles and message text."""
        query = "SELECT id, title, system_prompt, model, created, updated FROM chats"
        args: tuple[str, ...] = ()
        if search:
            like = f"%{search}%"
            query += (" WHERE title LIKE ? OR id IN "
                      "(SELECT chat_id FROM messages WHERE content LIKE ?)")
            args = (like, like)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY updated DESC, id DESC", args).fetchall()
        return [Chat(*row) for row in rows]

    def get_chat(self, chat_id: int) -> Chat | None:
        with self._lock:
            row = self._db.execute("SELECT id, title, system_prompt, model, created, updated "
                                   "FROM chats WHERE id=?", (chat_id,)).fetchone()
        return Chat(*row) if row else None

    def update_chat(self, chat_id: int, *, title: str | None = None,
                    system_prompt: str | None = None, model: str | None = None) -> None:
        with self._tx() as db:
            for column, value in (("title", title), ("system_prompt", system_prompt),
                                  ("model", model)):
                if value is not None:
                    db.execute(f"UPDATE chats SET {column}=? WHERE id=?", (value, chat_id))
            db.execute("UPDATE chats SET updated=? WHERE id=?", (time.time(), chat_id))

    def delete_chat(self, chat_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM chats WHERE id=?", (chat_id,))

    # -- messages ----------------------------------------------------------------------
    def add_message(self, chat_id: int, role: str, content: str, *, complete: bool = True,
                    metrics: dict[str, Any] | None = None) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO messages (chat_id, role, content, complete, metrics, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, role, content, int(complete), _dump(metrics), now))
            db.execute("UPDATE chats SET updated=? WHERE id=?", (now, chat_id))
            return int(cur.lastrowid or 0)

    def update_message(self, message_id: int, content: str, *, complete: bool,
                       finish_reason: str | None = None, error: str | None = None,
                       metrics: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE messages SET content=?, complete=?, finish_reason=?, error=?, "
                       "metrics=COALESCE(?, metrics) WHERE id=?",
                       (content, int(complete), finish_reason, error, _dump(metrics),
                        message_id))

    def messages(self, chat_id: int) -> list[Message]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, chat_id, role, content, complete, finish_reason, error, metrics, "
                "created FROM messages WHERE chat_id=? ORDER BY id", (chat_id,)).fetchall()
        return [Message(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6],
                        json.loads(r[7]) if r[7] else None, r[8]) for r in rows]

    def delete_messages_from(self, chat_id: int, message_id: int) -> None:
        """Delete a message and everything after it (regenerate, edit-and-resend)."""
        with self._tx() as db:
            db.execute("DELETE FROM messages WHERE chat_id=? AND id>=?", (chat_id, message_id))

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dump(metrics: dict[str, Any] | None) -> str | None:
    return json.dumps(metrics) if metrics is not None else None
