"""The SQLite chat store: chats, messages, metrics, search, versioning, durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.chat.history import SCHEMA_VERSION, HistoryError, HistoryStore


def test_chats_and_messages_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        chat = store.create_chat("Colours", system_prompt="Be brief.")
        store.add_message(chat.id, "user", "Name a colour")
        reply = store.add_message(chat.id, "assistant", "Bl", complete=False)
        store.update_message(reply, "Blue", complete=True, finish_reason="eos",
                             metrics={"decode_tok_s": 99.5, "ttft_ms": 30.0})
    with HistoryStore(path) as store:  # reopened: everything is on disk
        [loaded] = store.list_chats()
        assert (loaded.title, loaded.system_prompt) == ("Colours", "Be brief.")
        user, assistant = store.messages(loaded.id)
        assert (user.role, user.content) == ("user", "Name a colour")
        assert assistant.content == "Blue" and assistant.complete
        assert assistant.metrics == {"decode_tok_s": 99.5, "ttft_ms": 30.0}
        assert store.integrity_check() == "ok"


def test_rename_search_delete_and_truncate(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        a = store.create_chat("Alpha")
        b = store.create_chat("Beta")
        store.add_message(b.id, "user", "tell me about zebras")
        first = store.add_message(a.id, "user", "one")
        store.add_message(a.id, "assistant", "two")
        store.update_chat(a.id, title="Renamed")
        assert store.list_chats()[0].id == a.id  # most recently updated first
        assert [c.id for c in store.list_chats("zebra")] == [b.id]
        assert [c.id for c in store.list_chats("Renamed")] == [a.id]
        store.delete_messages_from(a.id, first)
        assert store.messages(a.id) == []
        store.delete_chat(b.id)
        assert [c.id for c in store.list_chats()] == [a.id]
        assert store.messages(b.id) == []  # cascaded


def test_wal_mode_and_version(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="newer Hearth"):
        HistoryStore(path)


def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match="cannot be opened"):
        HistoryStore(path)
