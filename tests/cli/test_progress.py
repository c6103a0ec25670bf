"""CLI progress bars (cli/progress.py): drawn on a terminal, silent in a pipe, colourless
under NO_COLOR; ``hearth-cli download`` through a real pseudo-terminal and through pipes."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from cli.progress import progress_bar, wants_progress
from tests.fixtures.hub_server import TINY_REPO
from tests.paths import REPO_ROOT

COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _draw(monkeypatch: pytest.MonkeyPatch, no_color: bool) -> str:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    out = io.StringIO()
    with progress_bar("Quantizing", total=200, stream=out, enabled=True) as bar:
        for done in range(0, 201, 50):
            bar.update(done)
        bar.note("tensor 3 kept in F16")
    return out.getvalue()


def test_a_bar_on_a_terminal_in_colour_and_without(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = _draw(monkeypatch, no_color=False)
    assert "Quantizing" in coloured and "100.0%" in coloured and "200/200" in coloured
    assert "tensor 3 kept in F16" in coloured
    assert COLOUR.search(coloured)
    plain = _draw(monkeypatch, no_color=True)
    assert "100.0%" in plain and not COLOUR.search(plain)


def test_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    assert not wants_progress(io.StringIO(), out)
    with progress_bar("Downloading", total=10, stream=out) as bar:
        bar.update(5)
        bar.note("retry")
        assert not bar.shown
    assert out.getvalue() == ""


def test_download_in_a_pipe_prints_only_the_path(test_hub, capsys) -> None:
    assert main(["download", TINY_REPO, "tiny-F16-00001-of-00002.gguf"]) == 0
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    assert Path(line).is_file() and captured.err == ""


def test_download_on_a_terminal_draws_a_bar(test_hub, tmp_path: Path) -> None:
    """stdout and stderr on a real pseudo-terminal, as a person running it sees it."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "download", TINY_REPO,
                             "tiny-F16-00002-of-00002.gguf"], stdout=follower,
                            stderr=follower, env=env, cwd=REPO_ROOT)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(60) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "tiny-F16-00001-of-00002.gguf" in shown and "100.0%" in shown
    assert not COLOUR.search(shown)  # NO_COLOR honoured on a terminal too
