"""A repo's GGUF models: files grouped (split shards as one model), sizes, sha256, quant.

The listing is what the model picker shows and what the planner labels ("fits on GPU", ...):
the planner is not imported here; a caller passes ``labeler`` (any callable taking a
:class:`HubModel` and returning a short label) so the hub never depends on the memory model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from huggingface_hub.hf_api import RepoFile

from core.errors import HearthError
from core.models.hub.cache import RepoCache
from core.models.hub.client import make_api, translated
from core.models.hub.errors import UnsafeFilenameError
from core.models.hub.names import (
    check_repo_filename,
    is_gguf,
    is_projector,
    model_key,
    part_index,
    quant_from_name,
    split_part,
)
from core.models.hub.settings import HubSettings


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo: path, size and (for LFS files) the sha256 the hub publishes."""

    path: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class HubModel:
    """One runnable model in a repo: a single GGUF or all shards of a split one."""

    repo_id: str
    name: str  # the file name, or the split stem + ".gguf"
    parts: tuple[RemoteFile, ...]
    quant: str | None  # from the name until a header was read (see quant_confirmed)
    quant_confirmed: bool = False
    projector: bool = False  # mmproj-*.gguf: a vision projector, not a chat model
    complete: bool = True  # False when shards of a split model are missing
    cached: bool = False  # every part is already in the local hub cache
    label: str | None = None  # from the planner's labeler, when one was given

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def first_file(self) -> str:
        return self.parts[0].path


Labeler = Callable[[HubModel], str | None]


def group_models(repo_id: str, files: list[RemoteFile]) -> list[HubModel]:
    """Group GGUF files into models: shards ``-0000i-of-0000N`` share one entry."""
    groups: dict[str, list[RemoteFile]] = {}
    for f in files:
        if is_gguf(f.path):
            groups.setdefault(model_key(f.path), []).append(f)
    models = []
    for key, parts in groups.items():
        parts.sort(key=lambda f: (part_index(f.path), f.path))
        first = split_part(parts[0].path)
        complete = first is None or (
            len(parts) == first.count
            and [part_index(p.path) for p in parts] == list(range(1, first.count + 1))
        )
        models.append(
            HubModel(
                repo_id=repo_id,
                name=key,
                parts=tuple(parts),
                quant=quant_from_name(key),
                projector=is_projector(key),
                complete=complete,
            )
        )
    models.sort(key=lambda m: (m.projector, m.size))
    return models


def _remote_files(repo_id: str, revision: str, settings: HubSettings) -> list[RemoteFile]:
    api = make_api(settings)
    with translated(f"the files of {repo_id}"):
        entries = list(api.list_repo_tree(repo_id, revision=revision, recursive=True))
    files = []
    for e in entries:
        if not isinstance(e, RepoFile):
            continue
        try:
            check_repo_filename(e.path)
        except UnsafeFilenameError:
            continue  # never offered: it could not be downloaded safely
        sha = e.lfs.sha256 if e.lfs is not None else None
        files.append(RemoteFile(e.path, int(e.lfs.size if e.lfs else e.size), sha))
    return files


def _cached_files(repo_id: str, revision: str, settings: HubSettings) -> list[RemoteFile]:
    """Offline: the repo's files as the local cache holds them (blob name = sha256 for LFS)."""
    cache = RepoCache(settings.cache_dir, repo_id)
    commit = cache.resolve_commit(revision)
    if commit is None:
        return []
    snap = cache.root / "snapshots" / commit
    files = []
    for path in sorted(snap.rglob("*")):
        if path.is_file():
            blob = path.resolve().name
            sha = blob if len(blob) == 64 else None
            files.append(RemoteFile(path.relative_to(snap).as_posix(), path.stat().st_size, sha))
    return files


def list_models(
    repo_id: str,
    *,
    revision: str = "main",
    labeler: Labeler | None = None,
    read_headers: bool = False,
    settings: HubSettings | None = None,
) -> list[HubModel]:
    """The GGUF models of a repo, smallest first (projectors last).

    Offline (``HF_HUB_OFFLINE=1``) the listing comes from the local cache. ``read_headers``
    fetches each model's GGUF header (a few MiB by range requests) to confirm the quant.
    """
    settings = settings or HubSettings.from_env()
    if settings.offline:
        models = [replace(m, cached=True) for m in
                  group_models(repo_id, _cached_files(repo_id, revision, settings))]
    else:
        models = group_models(repo_id, _remote_files(repo_id, revision, settings))
        cache = RepoCache(settings.cache_dir, repo_id)
        models = [
            replace(m, cached=all(cache.cached_file(p.path, revision) for p in m.parts))
            for m in models
        ]
    if read_headers and not settings.offline:
        models = [confirm_quant(m, revision=revision, settings=settings) for m in models]
    if labeler is not None:
        models = [replace(m, label=labeler(m)) for m in models]
    return models


def confirm_quant(
    model: HubModel, *, revision: str = "main", settings: HubSettings | None = None
) -> HubModel:
    """``model`` with its quant read from the GGUF header (``general.file_type``)."""
    from core.models.hub.remote_header import read_remote

    settings = settings or HubSettings.from_env()
    url = settings.resolve_url(model.repo_id, model.first_file, revision)
    try:
        info = read_remote(url)
    except HearthError:  # header unreadable: keep the name's quant, unconfirmed
        return model
    if info.file_type is None:
        return model
    return replace(model, quant=info.file_type_name, quant_confirmed=True)
