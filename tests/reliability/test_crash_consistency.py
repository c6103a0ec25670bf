"""The chat history survives SIGKILL at random points during streaming writes.

A writer process (``history_writer.py``) streams replies into one database the way the app
does and reports each committed transaction on stdout; the test kills it with SIGKILL after
a random delay, reopens the database, and checks that every committed message is there
with at least the committed content, that the database passes ``PRAGMA integrity_check``,
and that it can be written again. The same database goes through every kill, so recovery
from a WAL left by one crash is itself crashed into by the next.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.chat.history import HistoryStore
from tests.paths import REPO_ROOT

N_SIM_KILLS = 22
N_ENGINE_KILLS = 2


@dataclass
class Committed:
    n_chars: int
    digest: str
    complete: bool


def _run_and_kill(db: Path, seed: int, source: str, delay_s: float,
                  expected: dict[int, Committed]) -> int:
    """Start the writer, SIGKILL it ``delay_s`` after it is ready; returns commits seen."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.history_writer", str(db), str(seed), source],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT, env=env)
    assert proc.stdout is not None
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("READY"):
                ready.set()
            elif line.startswith("C "):
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(120), "the writer did not start"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    assert proc.returncode == -signal.SIGKILL
    for line in lines:
        _, mid, n, digest, complete = line.split()
        expected[int(mid)] = Committed(int(n), digest, complete == "1")
    return len(lines)


def _check(db: Path, expected: dict[int, Committed]) -> None:
    with HistoryStore(db) as store:
        assert store.integrity_check() == "ok"
        rows = {m.id: m for chat in store.list_chats() for m in store.messages(chat.id)}
        for mid, want in expected.items():
            assert mid in rows, f"committed message {mid} is lost"
            got = rows[mid]
            # Content only grows; a commit after the last one reported may have added more.
            assert len(got.content) >= want.n_chars
            prefix = got.content[:want.n_chars]
            assert hashlib.sha256(prefix.encode()).hexdigest()[:16] == want.digest
            if want.complete:
                assert got.complete and len(got.content) == want.n_chars
        # Still writable after recovery.
        chat = store.create_chat("after the crash")
        store.add_message(chat.id, "user", "still here")
        store.delete_chat(chat.id)


def test_sigkill_during_streaming_loses_no_committed_message(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    rng = random.Random(7)
    expected: dict[int, Committed] = {}
    total = 0
    for run in range(N_SIM_KILLS):
        total += _run_and_kill(db, run, "sim", rng.uniform(0.02, 0.6), expected)
        _check(db, expected)
    assert total > 20 * N_SIM_KILLS  # the kills landed amid real write traffic
    assert any(not c.complete for c in expected.values())  # some replies were cut mid-stream


@pytest.mark.slow
def test_sigkill_while_saving_a_real_engine_stream(tmp_path: Path, default_model: Path) -> None:
    db = tmp_path / "history.sqlite3"
    rng = random.Random(11)
    expected: dict[int, Committed] = {}
    for run in range(N_ENGINE_KILLS):
        _run_and_kill(db, 1000 + run, "engine", rng.uniform(0.5, 2.5), expected)
        _check(db, expected)
    assert len(expected) >= 2 * N_ENGINE_KILLS
