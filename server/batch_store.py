"""Files and batch jobs in SQLite (one file in the server's data folder, owner-only).

A batch's lines are rows: ``pending`` until a line's answer is stored (``done``, or
``failed`` with its error), each in its own transaction, so a server killed at any moment
restarts with every finished line kept and only unfinished ones to run. ``attempts``
counts how often a line was started (tests use it to prove nothing finished is redone).
Uploaded files are stored beside the database, named by id.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.paths import private_dir, private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, filename TEXT NOT NULL,
    purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, input_file_id TEXT NOT NULL,
    endpoint TEXT NOT NULL, completion_window TEXT NOT NULL, status TEXT NOT NULL,
    created_at INTEGER NOT NULL, in_progress_at INTEGER, finalizing_at INTEGER,
    completed_at INTEGER, failed_at INTEGER, cancelling_at INTEGER, cancelled_at INTEGER,
    expires_at INTEGER, output_file_id TEXT, error_file_id TEXT, metadata TEXT,
    errors TEXT, model TEXT);
CREATE TABLE IF NOT EXISTS lines (batch_id TEXT NOT NULL, line_no INTEGER NOT NULL,
    custom_id TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    status_code INTEGER, response TEXT, request_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, line_no));
"""
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
_TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "cancelling_at",
          "cancelled_at", "expires_at")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Line:
    batch_id: str
    line_no: int
    custom_id: str
    body: dict[str, Any]


class BatchStore:
    """Thread-safe: one connection behind a lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = private_dir(folder)
        self.files_dir = private_dir(folder / "files")
        path = private_file(folder / "batches.sqlite3")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- files ---------------------------------------------------------------------------
    def add_file(self, data: bytes, filename: str, purpose: str,
                 file_id: str | None = None) -> dict[str, Any]:
        file_id = file_id or new_id("file")
        path = private_file(self.files_dir / f"{file_id}.bin")
        path.write_bytes(data)
        now = int(time.time())
        self._run("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                  (file_id, filename, purpose, len(data), now))
        return self.file(file_id) or {}

    def file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM files WHERE id = ?", (file_id,))
        if not rows:
            return None
        r = rows[0]
        return {"id": r["id"], "object": "file", "bytes": r["bytes"], "created_at":
                r["created_at"], "filename": r["filename"], "purpose": r["purpose"],
                "status": "processed", "status_details": None, "expires_at": None}

    def files(self) -> list[dict[str, Any]]:
        rows = self._run("SELECT id FROM files ORDER BY created_at DESC, id")
        return [f for f in (self.file(r["id"]) for r in rows) if f is not None]

    def file_bytes(self, file_id: str) -> bytes | None:
        path = self.files_dir / f"{file_id}.bin"
        return path.read_bytes() if self.file(file_id) and path.is_file() else None

    def delete_file(self, file_id: str) -> bool:
        found = self.file(file_id) is not None
        self._run("DELETE FROM files WHERE id = ?", (file_id,))
        (self.files_dir / f"{file_id}.bin").unlink(missing_ok=True)
        return found

    # -- batches -------------------------------------------------------------------------
    def create_batch(self, input_file_id: str, endpoint: str, window: str,
                     metadata: dict[str, str] | None, lines: list[tuple[str, dict[str, Any]]],
                     errors: list[dict[str, Any]], batch_id: str | None = None) -> str:
        """A new batch: ``in_progress`` with its lines, or ``failed`` with ``errors``."""
        batch_id = batch_id or new_id("batch")
        now = int(time.time())
        status = "failed" if errors else "in_progress"
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO batches (id, input_file_id, endpoint, completion_window,"
                           " status, created_at, in_progress_at, failed_at, expires_at, "
                           "metadata, errors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (batch_id, input_file_id, endpoint, window, status, now,
                            None if errors else now, now if errors else None, now + 86400,
                            json.dumps(metadata) if metadata else None,
                            json.dumps(errors) if errors else None))
                db.executemany("INSERT INTO lines (batch_id, line_no, custom_id, body) "
                               "VALUES (?, ?, ?, ?)",
                               [(batch_id, i, cid, json.dumps(body))
                                for i, (cid, body) in enumerate(lines)] if not errors else [])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return batch_id

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            return None
        r = dict(rows[0])
        counts = self.counts(batch_id)
        errors = json.loads(r["errors"]) if r["errors"] else None
        usage = self._run("SELECT COALESCE(SUM(prompt_tokens), 0) AS p, "
                          "COALESCE(SUM(completion_tokens), 0) AS c FROM lines "
                          "WHERE batch_id = ?", (batch_id,))[0]
        return {"id": r["id"], "object": "batch", "endpoint": r["endpoint"],
                "errors": {"object": "list", "data": errors} if errors else None,
                "input_file_id": r["input_file_id"], "completion_window":
                r["completion_window"], "status": r["status"], "created_at": r["created_at"],
                **{k: r[k] for k in _TIMES}, "output_file_id": r["output_file_id"],
                "error_file_id": r["error_file_id"], "expired_at": None,
                "request_counts": counts, "model": r["model"],
                "metadata": json.loads(r["metadata"]) if r["metadata"] else None,
                "usage": {"input_tokens": usage["p"], "output_tokens": usage["c"],
                          "total_tokens": usage["p"] + usage["c"],
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}

    def batches(self, limit: int = 20, after: str | None = None) -> list[dict[str, Any]]:
        rows = self._run("SELECT id FROM batches ORDER BY created_at DESC, id DESC")
        ids = [r["id"] for r in rows]
        if after in ids:
            ids = ids[ids.index(after) + 1:]
        return [b for b in (self.batch(i) for i in ids[:limit]) if b is not None]

    def counts(self, batch_id: str) -> dict[str, int]:
        rows = self._run("SELECT status, COUNT(*) AS n FROM lines WHERE batch_id = ? "
                         "GROUP BY status", (batch_id,))
        by = {r["status"]: r["n"] for r in rows}
        return {"total": sum(by.values()), "completed": by.get("done", 0),
                "failed": by.get("failed", 0)}

    def set_status(self, batch_id: str, status: str, **fields: Any) -> None:
        stamp = {"finalizing": "finalizing_at", "completed": "completed_at", "failed":
                 "failed_at", "cancelling": "cancelling_at", "cancelled": "cancelled_at"}
        values = {"status": status, **fields}
        if status in stamp:
            values[stamp[status]] = int(time.time())
        sets = ", ".join(f"{k} = ?" for k in values)
        self._run(f"UPDATE batches SET {sets} WHERE id = ?", (*values.values(), batch_id))

    def active(self) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in ACTIVE)
        rows = self._run(f"SELECT id FROM batches WHERE status IN ({marks}) "
                         "ORDER BY created_at, id", ACTIVE)
        return [b for b in (self.batch(r["id"]) for r in rows) if b is not None]

    # -- lines ---------------------------------------------------------------------------
    def pending(self, batch_id: str, limit: int, skip: set[int]) -> list[Line]:
        rows = self._run("SELECT line_no, custom_id, body FROM lines WHERE batch_id = ? AND "
                         "status = 'pending' ORDER BY line_no LIMIT ?",
                         (batch_id, limit + len(skip)))
        out = [Line(batch_id, r["line_no"], r["custom_id"], json.loads(r["body"]))
               for r in rows if r["line_no"] not in skip]
        return out[:limit]

    def started(self, line: Line) -> None:
        self._run("UPDATE lines SET attempts = attempts + 1 WHERE batch_id = ? AND line_no = ?",
                  (line.batch_id, line.line_no))

    def finish_line(self, line: Line, status_code: int, response: dict[str, Any]) -> None:
        usage = response.get("usage") or {}
        self._run("UPDATE lines SET status = ?, status_code = ?, response = ?, request_id = ?, "
                  "prompt_tokens = ?, completion_tokens = ? WHERE batch_id = ? AND line_no = ?",
                  ("done" if status_code == 200 else "failed", status_code, json.dumps(response),
                   new_id("req"), int(usage.get("prompt_tokens") or 0),
                   int(usage.get("completion_tokens") or 0), line.batch_id, line.line_no))

    def attempts(self, batch_id: str) -> dict[int, int]:
        rows = self._run("SELECT line_no, attempts FROM lines WHERE batch_id = ?", (batch_id,))
        return {r["line_no"]: r["attempts"] for r in rows}

    def results(self, batch_id: str) -> list[sqlite3.Row]:
        return self._run("SELECT line_no, custom_id, status, status_code, response, request_id "
                         "FROM lines WHERE batch_id = ? AND status != 'pending' "
                         "ORDER BY line_no", (batch_id,))
