"""Small helpers shared by the hub tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.models.hub.cache import RepoCache
from core.models.hub.settings import HubSettings


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repo_cache(repo_id: str) -> RepoCache:
    return RepoCache(HubSettings.from_env().cache_dir, repo_id)
