"""Downloads against the local test hub: completion, verification, faults, offline."""

from __future__ import annotations

import threading

import pytest
from huggingface_hub import hf_hub_download

from core.models.bundled import DEFAULT_MODEL_SHA256
from core.models.hub.download import Downloader
from core.models.hub.errors import (
    AccessDeniedError,
    DiskFullError,
    DownloadCancelledError,
    HubOfflineError,
    HubUnreachableError,
    RepoNotFoundError,
    UnsafeFilenameError,
    VerificationError,
)
from core.models.hub.events import DownloadControl
from tests.fixtures.hub_server import DEFAULT_REPO, EVIL_REPO, GATED_REPO, TINY_REPO, TOKEN
from tests.hub.conftest_helpers import repo_cache, sha256

FILE = "tiny-Q8_0.gguf"


def fast() -> Downloader:
    return Downloader(backoff=0.01, max_retries=3, read_timeout=5, progress_interval=0)


def test_download_lands_in_the_hf_cache_verified(test_hub, monkeypatch):
    size = test_hub.repos[TINY_REPO].files[FILE].size
    events = list(fast().iter_download(TINY_REPO, FILE))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "verifying" in kinds
    done = [e.done for e in events if e.kind == "progress"]
    assert done == sorted(done) and done[-1] == size
    assert all(e.total == size for e in events)
    path = events[-1].path
    assert sha256(path) == test_hub.repos[TINY_REPO].files[FILE].sha256
    # The standard layout: a snapshot link to a blob named by the sha256.
    assert path.is_symlink() and path.resolve().name == sha256(path)
    assert test_hub.sent[(TINY_REPO, FILE)] == size
    # Any HF tool now finds it without the network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    same = hf_hub_download(TINY_REPO, FILE, local_files_only=True,
                           cache_dir=str(repo_cache(TINY_REPO).root.parent))
    assert same == str(path)


def test_second_download_reuses_the_verified_blob(test_hub):
    first = fast().download(TINY_REPO, FILE)
    test_hub.sent.clear()
    assert fast().download(TINY_REPO, FILE) == first
    assert test_hub.sent[(TINY_REPO, FILE)] == 0


def test_real_default_model_downloads_and_verifies(test_hub):
    path = fast().download(DEFAULT_REPO, "gemma-3-270m-it-Q4_K_M.gguf")
    assert path.resolve().name == DEFAULT_MODEL_SHA256
    assert sha256(path) == DEFAULT_MODEL_SHA256


def test_wrong_bytes_fail_verification_and_leave_nothing(test_hub):
    test_hub.fault(TINY_REPO, FILE, corrupt=True)
    events = []
    with pytest.raises(VerificationError, match="does not match its published sha256"):
        for event in fast().iter_download(TINY_REPO, FILE):
            events.append(event)
    assert "refetch" in [e.kind for e in events]  # deleted and fetched once more
    cache = repo_cache(TINY_REPO)
    assert not any(cache.root.rglob("*.gguf")), "no usable-looking file may remain"
    assert not any((cache.root / "blobs").iterdir())


def test_missing_file_is_a_clear_404_without_retries(test_hub):
    with pytest.raises(RepoNotFoundError, match="not found"):
        fast().download(TINY_REPO, "nope.gguf")
    assert len([r for r in test_hub.requests if "nope.gguf" in r[1]]) == 1


def test_gated_repo_needs_a_token(test_hub, monkeypatch):
    with pytest.raises(AccessDeniedError, match="HF_TOKEN"):
        fast().download(GATED_REPO, "gated-Q4_K_M.gguf")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = fast().download(GATED_REPO, "gated-Q4_K_M.gguf")
    assert sha256(path) == test_hub.repos[GATED_REPO].files["gated-Q4_K_M.gguf"].sha256


def test_server_errors_are_retried_then_reported(test_hub):
    test_hub.fault(TINY_REPO, FILE, status=500)
    with pytest.raises(HubUnreachableError, match="failed 4 times in a row"):
        fast().download(TINY_REPO, FILE)
    assert len([r for r in test_hub.requests if r[1].endswith(FILE)]) == 4


def test_transient_server_errors_recover(test_hub):
    test_hub.fault(TINY_REPO, FILE, status=503, times=2)
    path = fast().download(TINY_REPO, FILE)
    assert sha256(path) == test_hub.repos[TINY_REPO].files[FILE].sha256


def test_stalled_connection_times_out_and_resumes(test_hub):
    size = test_hub.repos[TINY_REPO].files[FILE].size
    test_hub.fault(TINY_REPO, FILE, stall_at=[size // 3], stall_s=10)
    dl = Downloader(backoff=0.01, read_timeout=0.5)
    kinds = [e.kind for e in dl.iter_download(TINY_REPO, FILE)]
    assert "retry" in kinds and kinds[-1] == "done"
    assert test_hub.sent[(TINY_REPO, FILE)] < 1.2 * size


def test_disk_full_before_start_is_refused(test_hub):
    dl = Downloader(free_space=lambda _p: 1_000_000)
    with pytest.raises(DiskFullError, match="Not enough disk space"):
        dl.download(TINY_REPO, FILE)
    assert test_hub.sent[(TINY_REPO, FILE)] == 0


def test_disk_full_during_keeps_the_partial_for_resume(test_hub):
    size = test_hub.repos[TINY_REPO].files[FILE].size
    calls = iter(range(10_000))

    def probe(_path):  # room at the start, then the disk "fills" after a few chunks
        return 10 << 30 if next(calls) < 8 else 0

    with pytest.raises(DiskFullError):
        Downloader(free_space=probe, disk_margin=0).download(TINY_REPO, FILE)
    partial = repo_cache(TINY_REPO).partial(test_hub.repos[TINY_REPO].files[FILE].sha256)
    kept = partial.stat().st_size
    assert 0 < kept < size
    test_hub.clear()  # what the aborted socket had buffered is not the resume's traffic
    path = fast().download(TINY_REPO, FILE)
    assert sha256(path) == test_hub.repos[TINY_REPO].files[FILE].sha256
    assert [r[2] for r in test_hub.requests if r[0] == "GET"] == [f"bytes={kept}-"]
    assert test_hub.sent[(TINY_REPO, FILE)] == size - kept


@pytest.mark.parametrize("name", ["../escape.gguf", "/etc/evil.gguf", "a/../../b.gguf",
                                  "..\\x.gguf", "C:/x.gguf"])
def test_unsafe_names_are_refused(test_hub, name):
    with pytest.raises(UnsafeFilenameError, match="Refusing"):
        fast().download(EVIL_REPO, name)
    assert not any(name in r[1] for r in test_hub.requests)


def test_pause_and_resume_continue_the_same_file(test_hub):
    control = DownloadControl()
    events = []
    for event in fast().iter_download(TINY_REPO, FILE, control=control):
        events.append(event)
        if event.kind == "progress" and not control.paused and len(events) < 3:
            control.pause()
            threading.Timer(0.2, control.resume).start()
    kinds = [e.kind for e in events]
    assert "paused" in kinds and "resumed" in kinds and kinds[-1] == "done"
    paused_at = next(e.done for e in events if e.kind == "paused")
    # The connection was closed on pause and reopened from the bytes on disk.
    assert [r[2] for r in test_hub.requests if r[0] == "GET"] == [None, f"bytes={paused_at}-"]
    assert sha256(events[-1].path) == test_hub.repos[TINY_REPO].files[FILE].sha256


def test_offline_serves_the_cache_and_refuses_downloads(test_hub, monkeypatch):
    path = fast().download(TINY_REPO, FILE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    test_hub.requests.clear()
    assert fast().download(TINY_REPO, FILE) == path
    with pytest.raises(HubOfflineError, match="offline mode is on"):
        fast().download(TINY_REPO, "tiny-Q4_K_M.gguf")
    assert test_hub.requests == []


def test_cancel_keeps_the_partial(test_hub):
    control = DownloadControl()
    with pytest.raises(DownloadCancelledError, match="partial file is kept"):
        for event in fast().iter_download(TINY_REPO, FILE, control=control):
            if event.kind == "progress":
                control.cancel()
    partial = repo_cache(TINY_REPO).partial(test_hub.repos[TINY_REPO].files[FILE].sha256)
    assert partial.stat().st_size > 0
