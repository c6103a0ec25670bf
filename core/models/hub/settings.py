"""Hub settings read from the environment at call time.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` once, when it
is imported. Hearth reads them at each call instead, so a setting changed after start-up (the
settings dialog, a test pointing at a local hub) takes effect, and passes them explicitly to
huggingface_hub's API (``endpoint=``, ``cache_dir=``, ``token=``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from huggingface_hub import constants, get_token

_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubSettings:
    """Where the hub is, where its cache lives, how to authenticate, whether offline."""

    endpoint: str
    cache_dir: Path
    token: str | None
    offline: bool

    @classmethod
    def from_env(cls) -> HubSettings:
        """The settings the environment asks for now (same variables and defaults as hf)."""
        endpoint = os.environ.get("HF_ENDPOINT") or constants._HF_DEFAULT_ENDPOINT
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
        if not cache:
            home = os.environ.get("HF_HOME") or os.path.join(
                os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                "huggingface",
            )
            cache = os.path.join(home, "hub")
        offline_flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
        return cls(
            endpoint=endpoint.rstrip("/"),
            cache_dir=Path(os.path.expandvars(os.path.expanduser(cache))),
            token=get_token(),
            offline=(offline_flag or "").upper() in _TRUE,
        )

    def resolve_url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """The file's download URL on this endpoint (as ``hf_hub_url`` builds it)."""
        return (f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/"
                f"{quote(filename)}")
