"""What a remote engine serves: ``GET /v1/models``, read as far as each server describes.

Every OpenAI-compatible server lists ``id`` and ``owned_by``; some say more. llama-server
adds ``meta`` (training context, parameters, file size), vLLM ``max_model_len``, Hearth
``context_length``; Ollama's OpenAI layer gives the id only. Missing facts stay None (shown
as unknown), never guessed. ``owned_by`` (and Ollama's port) tells which server it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.engine.remote.errors import RemoteEngineError

SERVER_NAMES = {"llamacpp": "llama-server", "vllm": "vLLM", "hearth": "Hearth",
                "ollama": "Ollama", "library": "Ollama"}
OLLAMA_PORT = 11434


@dataclass(frozen=True)
class RemoteModel:
    """One model a remote engine lists."""

    id: str
    base_url: str
    owned_by: str = ""
    server: str = "OpenAI-compatible"
    n_ctx: int | None = None
    n_params: int | None = None
    size_bytes: int | None = None

    @property
    def source(self) -> str:
        """What the picker's Source column says."""
        return f"remote · {self.server}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "base_url": self.base_url, "owned_by": self.owned_by,
                "server": self.server, "n_ctx": self.n_ctx, "n_params": self.n_params,
                "size_bytes": self.size_bytes, "source": self.source}


def server_name(owned_by: str, base_url: str) -> str:
    """Which server this is, from what it says about itself."""
    name = SERVER_NAMES.get(owned_by.lower())
    if name is None and urlsplit(base_url).port == OLLAMA_PORT:
        name = "Ollama"
    return name or "OpenAI-compatible"


def _int(*values: Any) -> int | None:
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None


def parse_models(data: Any, base_url: str) -> list[RemoteModel]:
    """The models in a ``/v1/models`` answer; RemoteEngineError if it is not one."""
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise RemoteEngineError(f"The engine at {base_url} answered /models without a model "
                                "list; is this an OpenAI-compatible address (ending in /v1)?")
    out = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("id"):
            continue
        meta: dict[str, Any] = row["meta"] if isinstance(row.get("meta"), dict) else {}
        owned = str(row.get("owned_by") or "")
        out.append(RemoteModel(
            id=str(row["id"]), base_url=base_url, owned_by=owned,
            server=server_name(owned, base_url),
            n_ctx=_int(row.get("max_model_len"), row.get("context_length"),
                       meta.get("n_ctx_train"), meta.get("n_ctx")),
            n_params=_int(meta.get("n_params"), row.get("n_params")),
            size_bytes=_int(meta.get("size"), row.get("size_bytes"))))
    return out
