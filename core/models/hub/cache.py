"""The standard Hugging Face cache layout, shared with every HF tool.

``<cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>,
refs/<revision>}``. Hearth writes exactly what huggingface_hub writes, so a model fetched by
Hearth serves ``hf_hub_download`` and the reverse. Hearth's resumable partial is
``blobs/<etag>.incomplete``: keyed by content (the etag), so it can only ever be completed with
the same bytes. (huggingface_hub 2.4.0 uses ``<etag>.<random>.incomplete`` and deletes it on
failure, so the two never collide.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub.file_download import repo_folder_name

from core.models.hub.names import check_repo_filename

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


class RepoCache:
    """Paths of one model repo inside a hub cache folder."""

    def __init__(self, cache_dir: Path, repo_id: str) -> None:
        self.repo_id = repo_id
        self.root = Path(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model")
        self.locks = Path(cache_dir) / ".locks" / self.root.name

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / etag

    def partial(self, etag: str) -> Path:
        return self.root / "blobs" / f"{etag}.incomplete"

    def lock(self, etag: str) -> Path:
        return self.locks / f"{etag}.lock"

    def snapshot(self, commit: str, filename: str) -> Path:
        return self.root / "snapshots" / commit / check_repo_filename(filename)

    def resolve_commit(self, revision: str) -> str | None:
        """The commit a revision points to in the cache (a commit hash is its own answer)."""
        if COMMIT_RE.match(revision):
            return revision
        ref = self.root / "refs" / revision
        try:
            return ref.read_text().strip() or None
        except OSError:
            return None

    def cached_file(self, filename: str, revision: str = "main") -> Path | None:
        """The complete cached file for (revision, filename), or None."""
        commit = self.resolve_commit(revision)
        if commit is None:
            return None
        path = self.snapshot(commit, filename)
        return path if path.is_file() else None

    def link(self, commit: str, filename: str, etag: str, revision: str) -> Path:
        """Point ``snapshots/<commit>/<filename>`` at the blob and record the revision's ref."""
        dst = self.snapshot(commit, filename)
        dst.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.blob(etag), dst.parent)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        try:
            dst.symlink_to(target)
        except OSError:  # no symlinks (Windows without developer mode): hf copies too
            import shutil

            shutil.copyfile(self.blob(etag), dst)
        if revision != commit:
            ref = self.root / "refs" / revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(commit)
        return dst
