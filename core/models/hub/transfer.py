"""Stream one byte range of a URL into a partial file: the resumable core of a download.

Why not ``hf_hub_download``: in huggingface_hub 2.4.0 (``file_download._download_to_tmp_and_move``)
each call writes to a fresh ``<etag>.<uuid>.incomplete`` and deletes it in a ``finally``, so a
cancelled, crashed or killed download always starts again from byte 0; only inside one call
does ``http_get`` retry with a Range header. Hearth keeps the partial under a stable,
content-keyed name and reopens it with ``Range: bytes=<size on disk>-``, using the same HTTP
client (``get_session``: proxies, user agent, ``HF_TOKEN`` headers) as huggingface_hub.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Generator
from pathlib import Path

import httpx2

from core.models.hub.errors import DiskFullError, hub_error_for_status

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class TransientError(Exception):
    """A failure worth retrying (connection dropped, stalled read, 5xx, 429)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def disk_full(path: Path, need: int, free: int) -> DiskFullError:
    """The error for too little space at ``path`` (sizes in the message, partial kept)."""
    return DiskFullError(
        f"Not enough disk space for this download in {path}: {need / 1e6:,.1f} MB still needed, "
        f"{free / 1e6:,.1f} MB free; free some space and download again (it will resume)."
    )


def iter_range(
    session: httpx2.Client,
    url: str,
    headers: dict[str, str],
    partial: Path,
    *,
    total: int,
    read_timeout: float,
    what: str,
) -> Generator[int, None, None]:
    """Append ``url``'s bytes from ``partial``'s current size on; yield the size after each write.

    The caller may stop between chunks (pause, cancel, disk full) by closing the generator:
    the connection closes and the bytes written so far stay valid. Retryable failures raise
    :class:`TransientError`; final HTTP errors raise Hearth errors.
    """
    offset = partial.stat().st_size if partial.exists() else 0
    if offset > total:  # longer than the file can be: not ours to trust
        partial.unlink()
        offset = 0
    if offset == total:
        yield offset
        return
    req = dict(headers)
    req["Accept-Encoding"] = "identity"  # sizes and offsets are about the raw bytes
    if offset:
        req["Range"] = f"bytes={offset}-"
    timeout = httpx2.Timeout(connect=30.0, read=read_timeout, write=30.0, pool=30.0)
    try:
        with session.stream("GET", url, headers=req, timeout=timeout,
                            follow_redirects=True) as resp:
            status = resp.status_code
            if status in RETRY_STATUSES:
                raise TransientError(f"HTTP {status}", status)
            if status == 416:  # nothing left to send from this offset
                yield offset
                return
            if status >= 400:
                raise hub_error_for_status(status, what)
            if status == 206:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if not match or int(match[1]) != offset:
                    raise TransientError("the server answered a different byte range")
            else:  # 200: the server ignored Range; start over rather than mix content
                offset = 0
            partial.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("r+b" if partial.exists() else "wb") as fh:
                fh.seek(offset)
                fh.truncate()
                size = offset
                for chunk in resp.iter_bytes():
                    if not chunk:
                        continue
                    fh.write(chunk)
                    fh.flush()  # on disk for the next process even if this one is killed
                    size += len(chunk)
                    if size > total:
                        raise TransientError("the server sent more bytes than the file has")
                    yield size
                yield size
    except httpx2.TransportError as err:
        raise TransientError(f"{type(err).__name__}: {err}") from err
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(
                f"The disk filled up while downloading {what}; free some space and download "
                f"again (it will resume)."
            ) from err
        raise
