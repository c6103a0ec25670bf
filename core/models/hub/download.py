"""Download a repo file into the Hugging Face cache: resumable, retried, verified.

The flow of one file: metadata by HEAD (commit, etag = sha256 for LFS files, size) ->
an already cached blob is re-verified and reused -> free space checked -> bytes streamed into
``blobs/<etag>.incomplete`` with Range resumes across drops, stalls, 5xx, pauses, cancels,
crashes and restarts -> sha256 checked -> only then renamed to ``blobs/<etag>`` and linked from
``snapshots/<commit>/<file>``. A file is therefore never visible under its usable name before
its hash matched; a mismatch deletes it and fetches once more from zero, then gives up.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from huggingface_hub import get_hf_file_metadata
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers, get_session

from core.models.hub.cache import RepoCache
from core.models.hub.client import translated
from core.models.hub.errors import (
    DownloadCancelledError,
    HubOfflineError,
    HubUnreachableError,
    VerificationError,
)
from core.models.hub.events import DownloadControl, DownloadEvent, RateMeter
from core.models.hub.names import check_repo_filename
from core.models.hub.settings import HubSettings
from core.models.hub.transfer import RETRY_STATUSES, TransientError, disk_full, iter_range

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def free_bytes(path: Path) -> int:
    """Free space on the volume holding ``path`` (its nearest existing parent)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


class _Paused(Exception):
    pass


@dataclass(frozen=True)
class _Remote:
    url: str
    commit: str
    etag: str
    size: int


def file_digest(path: Path, algo: str, on_progress: Callable[[int], None] | None = None) -> str:
    """Hex digest of a file; ``sha1`` is the git blob hash (for files not stored in LFS)."""
    digest = hashlib.new(algo)
    if algo == "sha1":
        digest.update(f"blob {path.stat().st_size}\0".encode())
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done)
    return digest.hexdigest()


@dataclass
class Downloader:
    """Downloads with injected collaborators (free-space probe, sleep) so tests use real ones.

    ``max_retries`` counts consecutive failures without progress: a download that keeps
    moving forward is never abandoned, one that is stuck gives up after backoff
    ``backoff * 2**n`` (capped at ``backoff_max``) with a clear error.
    """

    settings: HubSettings | None = None
    free_space: Callable[[Path], int] = free_bytes
    max_retries: int = 6
    backoff: float = 0.5
    backoff_max: float = 20.0
    read_timeout: float = 30.0
    disk_margin: int = 16 << 20
    progress_interval: float = 0.1
    _settings: HubSettings = field(init=False, repr=False)

    def download(self, repo_id: str, filename: str, revision: str = "main",
                 control: DownloadControl | None = None) -> Path:
        """Run :meth:`iter_download` to the end; return the usable path in the cache."""
        path = None
        for event in self.iter_download(repo_id, filename, revision, control):
            if event.kind == "done":
                path = event.path
        assert path is not None
        return path

    def iter_download(self, repo_id: str, filename: str, revision: str = "main",
                      control: DownloadControl | None = None) -> Iterator[DownloadEvent]:
        """Events of one file's download; the last one is ``done`` with the cached path."""
        check_repo_filename(filename)
        self._settings = self.settings or HubSettings.from_env()
        control = control or DownloadControl()
        cache = RepoCache(self._settings.cache_dir, repo_id)
        what = f"{repo_id}/{filename}"
        if self._settings.offline:
            cached = cache.cached_file(filename, revision)
            if cached is None:
                raise HubOfflineError(
                    f"Cannot download {what}: offline mode is on (HF_HUB_OFFLINE=1) and the file "
                    f"is not in the cache; unset HF_HUB_OFFLINE to download it."
                )
            yield DownloadEvent("done", repo_id, filename, path=cached,
                                done=cached.stat().st_size, total=cached.stat().st_size)
            return
        remote = self._metadata(repo_id, filename, revision, control)
        algo = "sha256" if _SHA256.match(remote.etag) else "sha1" if _SHA1.match(remote.etag) \
            else None
        if algo is None:
            raise VerificationError(
                f"The hub published no checksum for {what}; Hearth does not install files it "
                f"cannot verify. Try another file or mirror."
            )
        cache.lock(remote.etag).parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache.lock(remote.etag))):
            blob = cache.blob(remote.etag)
            if blob.is_file():
                yield DownloadEvent("verifying", repo_id, filename, total=remote.size,
                                    done=remote.size, message="checking the cached copy")
                if file_digest(blob, algo) == remote.etag:
                    path = cache.link(remote.commit, filename, remote.etag, revision)
                    yield DownloadEvent("done", repo_id, filename, done=remote.size,
                                        total=remote.size, path=path)
                    return
                blob.unlink()  # a damaged copy (another tool, a bad disk): fetch again
            yield from self._fetch(cache, remote, repo_id, filename, algo, control)
            path = cache.link(remote.commit, filename, remote.etag, revision)
        yield DownloadEvent("done", repo_id, filename, done=remote.size, total=remote.size,
                            path=path)

    # --- steps ----------------------------------------------------------------------------

    def _retrying(self, attempt: int, what: str, reason: str, control: DownloadControl) -> None:
        if attempt > self.max_retries:
            raise HubUnreachableError(
                f"Downloading {what} failed {attempt} times in a row ({reason}); check the "
                f"network and download again: it will resume where it stopped."
            )
        control.sleep(min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))
        if control.cancelled:
            raise DownloadCancelledError(
                f"Download of {what} cancelled; the partial file is kept and a new download "
                f"resumes it."
            )

    def _metadata(self, repo_id: str, filename: str, revision: str,
                  control: DownloadControl) -> _Remote:
        s = self._settings
        url = s.resolve_url(repo_id, filename, revision)
        what = f"{repo_id}/{filename}"
        attempt = 0
        while True:
            try:
                with translated(what):
                    try:
                        meta = get_hf_file_metadata(url, token=s.token or False,
                                                    endpoint=s.endpoint)
                    except HfHubHTTPError as err:
                        status = err.response.status_code if err.response is not None else 0
                        if status in RETRY_STATUSES:
                            raise TransientError(f"HTTP {status}", status) from err
                        raise
            except HubUnreachableError as err:  # connection refused, timeout
                attempt += 1
                self._retrying(attempt, what, str(err), control)
                continue
            except TransientError as err:
                attempt += 1
                self._retrying(attempt, what, str(err), control)
                continue
            break
        if not meta.commit_hash or not meta.etag or meta.size is None:
            raise HubUnreachableError(
                f"{s.endpoint} did not answer like a Hugging Face hub for {what} (no commit, "
                f"etag or size); check HF_ENDPOINT."
            )
        return _Remote(meta.location or url, meta.commit_hash, meta.etag, int(meta.size))

    def _fetch(self, cache: RepoCache, remote: _Remote, repo_id: str, filename: str,
               algo: str, control: DownloadControl) -> Iterator[DownloadEvent]:
        what = f"{repo_id}/{filename}"
        partial = cache.partial(remote.etag)
        partial.parent.mkdir(parents=True, exist_ok=True)
        for fetch_round in (1, 2):
            have = partial.stat().st_size if partial.exists() else 0
            free = self.free_space(partial.parent)
            if free < remote.size - have + self.disk_margin:
                raise disk_full(partial.parent, remote.size - have, free)
            yield DownloadEvent("start", repo_id, filename, done=have, total=remote.size,
                                resumed_from=have)
            yield from self._transfer(partial, remote, what, control, repo_id, filename)
            yield DownloadEvent("verifying", repo_id, filename, done=remote.size,
                                total=remote.size)
            if file_digest(partial, algo) == remote.etag:
                os.chmod(partial, 0o644)
                os.replace(partial, cache.blob(remote.etag))
                return
            partial.unlink()
            if fetch_round == 1:
                yield DownloadEvent("refetch", repo_id, filename, total=remote.size,
                                    message="checksum mismatch; the file was deleted and is "
                                            "fetched again from the start")
        raise VerificationError(
            f"The downloaded {what} does not match its published {algo} (twice); the file was "
            f"deleted. The hub or a proxy is serving damaged data; try again later."
        )

    def _transfer(self, partial: Path, remote: _Remote, what: str,
                  control: DownloadControl, repo_id: str, filename: str
                  ) -> Iterator[DownloadEvent]:
        """Bring ``partial`` to full size, one ranged request after another."""
        headers = build_hf_headers(token=self._settings.token or False)
        meter = RateMeter()
        last_emit = 0.0
        attempt = 0
        while True:
            before = partial.stat().st_size if partial.exists() else 0
            size = before
            chunks = iter_range(get_session(), remote.url, headers, partial, total=remote.size,
                                read_timeout=self.read_timeout, what=what)
            try:
                with closing(chunks):
                    for size in chunks:
                        self._check_between_chunks(control, partial, remote.size - size, what)
                        rate = meter.add(size)
                        now = time.monotonic()
                        if now - last_emit >= self.progress_interval or size == remote.size:
                            last_emit = now
                            eta = (remote.size - size) / rate if rate > 0 else None
                            yield DownloadEvent("progress", repo_id, filename, done=size,
                                                total=remote.size, rate=rate, eta=eta)
                if size == remote.size:
                    return
                raise TransientError(f"the connection ended at byte {size} of {remote.size}")
            except _Paused:
                yield DownloadEvent("paused", repo_id, filename, done=size, total=remote.size)
                control.wait_running()
                self._check_between_chunks(control, partial, 0, what)
                meter.reset()
                yield DownloadEvent("resumed", repo_id, filename, done=size, total=remote.size)
            except TransientError as err:
                after = partial.stat().st_size if partial.exists() else 0
                attempt = 1 if after > before else attempt + 1
                yield DownloadEvent("retry", repo_id, filename, done=after, total=remote.size,
                                    attempt=attempt, message=str(err))
                self._retrying(attempt, what, str(err), control)

    def _check_between_chunks(self, control: DownloadControl, partial: Path, remaining: int,
                              what: str) -> None:
        """Stop for a cancel, a pause or a disk that no longer has room for the rest."""
        if control.cancelled:
            raise DownloadCancelledError(
                f"Download of {what} cancelled; the partial file is kept and a new download "
                f"resumes it."
            )
        if control.paused:
            raise _Paused
        free = self.free_space(partial.parent)
        if free < remaining:
            raise disk_full(partial.parent, remaining, free)
