"""Reading the header of a GGUF file on the Hub without downloading it.

Bytes are fetched in aligned blocks by HTTP range requests as llama.cpp's header reader asks
for them (:func:`core.gguf.reader.parse_header`), so a 5 GB file costs a few MiB of traffic.
"""

from __future__ import annotations

from typing import Any

from core.gguf.info import ModelInfo
from core.gguf.reader import HeaderReadError, parse_header


class RemoteReadError(HeaderReadError):
    """A remote GGUF header could not be read over HTTP."""


def hub_file_url(repo_id: str, filename: str, revision: str = "main") -> str:
    """The resolve URL of a file on the Hub, honouring ``HF_ENDPOINT`` as it is now
    (``huggingface_hub.hf_hub_url`` reads it once, at import)."""
    from core.models.hub.settings import HubSettings

    return HubSettings.from_env().resolve_url(repo_id, filename, revision)


def read_remote(url: str, *, block: int = 1 << 20, session: Any = None) -> ModelInfo:
    """:class:`ModelInfo` of a remote GGUF, fetching only its header by HTTP range requests.

    Bytes are fetched in ``block``-sized aligned ranges as the parser asks for them, so a
    5 GB file costs a few MiB of traffic. Uses huggingface_hub's configured HTTP client (and
    its auth token, when logged in) so proxies and ``HF_ENDPOINT`` behave as for downloads.
    """
    from huggingface_hub.utils import build_hf_headers, get_session

    http = session or get_session()
    headers = build_hf_headers()
    cache: dict[int, bytes] = {}
    try:
        head = http.head(url, headers=headers, follow_redirects=True, timeout=30)
        head.raise_for_status()
        size = int(head.headers.get("content-length", 0))
    except Exception as err:
        raise RemoteReadError(
            f"Cannot reach {url} ({err}); check the network and the name."
        ) from err
    if size <= 0:
        raise RemoteReadError(f"{url} did not report its size; cannot read its header.")

    def fetch(index: int) -> bytes:
        if index not in cache:
            start = index * block
            end = min(size, start + block) - 1
            resp = http.get(url, headers={**headers, "Range": f"bytes={start}-{end}"},
                            follow_redirects=True, timeout=60)
            resp.raise_for_status()
            data = resp.content
            if resp.status_code == 200:  # server ignored Range: keep only the wanted slice
                data = data[start:end + 1]
            cache[index] = data
        return cache[index]

    def read_at(offset: int, length: int) -> bytes:
        out = bytearray()
        pos, stop = offset, min(size, offset + length)
        while pos < stop:
            chunk = fetch(pos // block)
            lo = pos % block
            piece = chunk[lo:lo + (stop - pos)]
            if not piece:
                break
            out += piece
            pos += len(piece)
        return bytes(out)

    info = parse_header(read_at, size, url)
    info.metadata["_bytes_fetched"] = sum(len(c) for c in cache.values())
    return info

