"""Interrupted downloads resume from the bytes on disk, within a call and across processes.

The server counts the body bytes it wrote; the resumes must keep the total under 1.2 × the
file size and end with the right sha256.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from core.models.hub.download import Downloader
from core.models.hub.errors import DownloadCancelledError
from core.models.hub.events import DownloadControl
from tests.fixtures.hub_server import TINY_REPO
from tests.hub.conftest_helpers import repo_cache, sha256
from tests.paths import REPO_ROOT

FILE = "tiny-Q8_0.gguf"


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_twenty_dropped_connections_resume_where_they_stopped(test_hub):
    f = test_hub.repos[TINY_REPO].files[FILE]
    offsets = sorted(random.Random(6).sample(range(1, f.size), 20))
    test_hub.fault(TINY_REPO, FILE, drop_at=list(offsets))
    events = list(Downloader(backoff=0.001, max_retries=3).iter_download(TINY_REPO, FILE))
    retries = [e for e in events if e.kind == "retry"]
    assert [e.done for e in retries] == offsets  # each resume starts at the drop point
    assert sha256(events[-1].path) == f.sha256
    assert test_hub.sent[(TINY_REPO, FILE)] < 1.2 * f.size
    ranges = [r[2] for r in test_hub.requests if r[0] == "GET"]
    assert ranges == [None] + [f"bytes={o}-" for o in offsets]


def test_cancel_then_new_download_resumes_at_random_offsets(test_hub):
    """An app restart: each new Downloader knows nothing but the partial file on disk."""
    f = test_hub.repos[TINY_REPO].files[FILE]
    partial = repo_cache(TINY_REPO).partial(f.sha256)
    for offset in sorted(random.Random(7).sample(range(1, f.size), 5)):
        before = partial.stat().st_size if partial.exists() else 0
        if before >= offset:
            continue
        test_hub.clear()
        control = DownloadControl()
        with pytest.raises(DownloadCancelledError):
            for event in Downloader(progress_interval=0).iter_download(
                TINY_REPO, FILE, control=control
            ):
                if event.kind == "progress" and event.done >= offset:
                    control.cancel()
        gets = [r[2] for r in test_hub.requests if r[0] == "GET"]
        assert gets == [f"bytes={before}-" if before else None]
        assert partial.stat().st_size >= offset
    path = Downloader().download(TINY_REPO, FILE)
    assert sha256(path) == f.sha256


def _child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.Popen(
        [sys.executable, *(args or ("-m", "tests.hub.downloader_child", TINY_REPO, FILE))],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_sigkilled_downloader_resumes_in_a_new_process(test_hub):
    f = test_hub.repos[TINY_REPO].files[FILE]
    partial = repo_cache(TINY_REPO).partial(f.sha256)
    offsets = sorted(random.Random(8).sample(range(1, f.size), 20))
    test_hub.fault(TINY_REPO, FILE, stall_at=list(offsets), stall_s=15)
    for offset in offsets:
        test_hub.stalled.clear()
        proc = _child()
        try:
            assert test_hub.stalled.wait(30), "the downloader never reached the stall"
            # The server stopped at `offset`; once those bytes are on disk, kill -9.
            assert _wait_for(lambda o=offset: partial.exists() and partial.stat().st_size == o)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert partial.stat().st_size == offset
    proc = _child()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sha256(repo_cache(TINY_REPO).blob(f.sha256)) == f.sha256
    assert test_hub.sent[(TINY_REPO, FILE)] < 1.2 * f.size
    ranges = [r[2] for r in test_hub.requests if r[0] == "GET"]
    assert ranges == [None] + [f"bytes={o}-" for o in offsets]


_HF_CHILD = """
import sys
from huggingface_hub import hf_hub_download
hf_hub_download(sys.argv[1], sys.argv[2])
"""


def test_huggingface_hub_itself_restarts_from_zero_after_a_kill(test_hub):
    """Why Hearth resumes by itself: checked, not assumed (huggingface_hub #4196).

    hf_hub_download writes to ``<etag>.<uuid>.incomplete``; a killed process leaves that file
    orphaned and the next process starts a new one from byte 0.
    """
    from huggingface_hub import hf_hub_download

    f = test_hub.repos[TINY_REPO].files[FILE]
    offset = f.size // 2
    test_hub.fault(TINY_REPO, FILE, stall_at=[offset], stall_s=15)
    proc = _child("-c", _HF_CHILD, TINY_REPO, FILE)
    try:
        assert test_hub.stalled.wait(30)
        blobs = repo_cache(TINY_REPO).root / "blobs"
        # (it buffers up to 10 MB per write, so the file may still be short of `offset`)
        assert _wait_for(lambda: any(blobs.glob("*.incomplete")))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    orphans = list(blobs.glob("*.incomplete"))
    test_hub.clear()
    hf_hub_download(TINY_REPO, FILE, endpoint=test_hub.url, cache_dir=blobs.parent.parent)
    assert all(p.exists() for p in orphans)  # left behind, never reused
    gets = [r[2] for r in test_hub.requests if r[0] == "GET"]
    assert gets == [None]  # no Range: the half already on disk was ignored
    assert test_hub.sent[(TINY_REPO, FILE)] == f.size
