"""Single instance, with two real processes: a second launch raises the first and exits."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.fixtures.launching import HEARTH


def _start_first(env: dict[str, str]) -> subprocess.Popen:
    """A first Hearth (no model: nothing to wait for) whose window is painted, so its
    server is listening (the lock is claimed before the window is built)."""
    first = subprocess.Popen([str(HEARTH), "--no-model", "--timings"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    line = first.stdout.readline()
    if not line:
        first.kill()
        pytest.fail(f"the first instance did not start: {first.stderr.read()[-2000:]}")
    assert json.loads(line)["event"] == "window_shown"
    return first


def test_second_launch_raises_the_first_and_exits(hearth_env) -> None:
    env = hearth_env()
    first = _start_first(env)
    try:
        t0 = time.perf_counter()
        second = subprocess.run([str(HEARTH)], capture_output=True, text=True, timeout=60,
                                env=env)
        elapsed = time.perf_counter() - t0
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert elapsed < 10, f"the hand-off took {elapsed:.1f} s"
        assert first.poll() is None, "the first instance must keep running"
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    assert "another launch asked for this window" in err


def test_a_crashed_instance_does_not_block_the_next_launch(hearth_env) -> None:
    """SIGKILL leaves the socket file behind; the next launch must replace it and start."""
    env = hearth_env()
    first = _start_first(env)
    first.kill()
    first.communicate(timeout=30)
    proc = subprocess.run([str(HEARTH), "--exit-when-shown"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "hearth: window shown" in proc.stdout
    assert "already running" not in proc.stderr


def test_separate_homes_are_separate_instances(tmp_path, hearth_env) -> None:
    from app.single_instance import server_name

    assert server_name(tmp_path / "a") != server_name(tmp_path / "b")
    assert server_name(tmp_path / "a") == server_name(tmp_path / "a")
