"""``hearth-cli generate`` end to end, in a subprocess as a user runs it: streaming, JSON
events, and one clear error line (never a traceback) for every bad input."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.paths import REPO_ROOT


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *phrases: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hearth-cli"), lines[0]
    for phrase in phrases:
        assert phrase.lower() in lines[0].lower(), lines[0]
    return lines[0]


def test_generate_streams_json_events(default_model: Path) -> None:
    proc = cli("generate", "--model", str(default_model), "--prompt", "The capital of France is",
               "--max-tokens", "12", "--temperature", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events[:-1]] == ["token"] * (len(events) - 1)
    done = events[-1]
    assert done["event"] == "done" and done["finish_reason"] == "length"
    assert done["metrics"]["decode_tokens"] == 12
    assert done["text"] == "".join(e["text"] for e in events[:-1])
    assert done["metrics"]["decode_tok_s"] > 0


def test_a_closed_stdout_stops_the_reply(default_model: Path) -> None:
    """``hearth-cli generate ... | head -3``: the reader going away cancels the request
    (the events are written on the engine's reader thread, so this must reach it) and the
    command ends at once, quietly, instead of decoding 4,000 tokens into a closed pipe."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "generate", "--model", str(default_model), "--prompt",
         "Once upon a time", "--max-tokens", "4000", "--ignore-eos", "--temperature", "0",
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=REPO_ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    assert all(json.loads(line)["event"] == "token" for line in lines)
    proc.stdout.close()
    code = proc.wait(timeout=30)  # 4,000 tokens would take a minute or more here
    err = proc.stderr.read()
    assert code == 0, err
    assert "Traceback" not in err


def test_generate_plain_text_and_chat(default_model: Path) -> None:
    proc = cli("generate", "--model", str(default_model), "--chat", "Hi!", "--max-tokens", "8",
               "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "template gemma" in proc.stderr


def test_missing_file() -> None:
    assert_one_error_line(cli("generate", "--model", "/no/such/model.gguf", "--prompt", "x"),
                          "not found")


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.gguf"
    bad.touch()
    assert_one_error_line(cli("generate", "--model", str(bad), "--prompt", "x"), "empty")


def test_random_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "noise.gguf"
    bad.write_bytes(random.Random(1).randbytes(1 << 16))
    assert_one_error_line(cli("generate", "--model", str(bad), "--prompt", "x"), "not a gguf")


def test_truncated_copy_of_the_real_model(tmp_path: Path, default_model: Path) -> None:
    bad = tmp_path / "truncated.gguf"
    with default_model.open("rb") as src, bad.open("wb") as dst:
        dst.write(src.read(default_model.stat().st_size // 2))
    assert_one_error_line(cli("generate", "--model", str(bad), "--prompt", "x"), "truncated")


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "banana.gguf"
    writer = gguf.GGUFWriter(str(path), "banana")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert_one_error_line(cli("generate", "--model", str(path), "--prompt", "x"),
                          "unknown model architecture 'banana'")


def test_context_too_large_for_memory(default_model: Path) -> None:
    assert_one_error_line(cli("generate", "--model", str(default_model), "--prompt", "x",
                              "--ctx", "2000000000"), "context", "memory")


def test_prompt_longer_than_context(default_model: Path) -> None:
    long_prompt = "word " * 1200
    line = assert_one_error_line(cli("generate", "--model", str(default_model), "--prompt",
                                     long_prompt, "--ctx", "512"), "prompt")
    assert "context" in line


@pytest.mark.parametrize("flags,phrase", [
    (["--ctx", "banana"], "--ctx"),
    (["--max-tokens", "-3"], "--max-tokens"),
    (["--temperature", "hot"], "--temperature"),
    (["--preset", "beam"], "--preset"),
])
def test_bad_flags(flags: list[str], phrase: str) -> None:
    proc = cli("generate", "--prompt", "x", *flags)
    assert proc.returncode == 2
    assert_one_error_line(proc, phrase)
