"""``hearth-cli chat`` on the window's chat rules: a reply, /regen replacing it, and --save
keeping the chat in the history the app lists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.chat.history import HistoryStore
from tests.paths import REPO_ROOT


def test_chat_saves_and_regenerates(chat_model: Path, isolated_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "chat", "--model", str(chat_model), "--save",
         "--temperature", "0", "--max-tokens", "24"],
        input="Name the capital of France.\n/regen\n/exit\n", capture_output=True,
        text=True, timeout=180, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout
    stats = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert len(stats) == 2  # one stats line per reply, the regen's too
    with HistoryStore(isolated_home / "history.sqlite3") as store:
        [chat] = store.list_chats()
        assert chat.title == "Name the capital of France."
        assert chat.model.startswith("SmolLM2") or "smollm2" in chat.model.lower()
        rows = store.messages(chat.id)
    assert [(m.role, m.complete) for m in rows] == [("user", True), ("assistant", True)]
    assert rows[1].content.strip() and rows[1].content in proc.stdout
    assert rows[1].metrics is not None and rows[1].metrics["decode_tokens"] > 0
