"""The library: every model Hearth can run, found on disk at each scan.

Sources: the bundled default, the Hugging Face cache (Hearth's downloads and any other HF
tool's), files the user imported (copied or linked into Hearth's models folder), and GGUFs
that Ollama and LM Studio already keep, found read-only. Nothing is persisted: the library is
a view of the disk, so it can never disagree with it.

Roots are injected (defaults: the real locations) so tests build fixture folders instead of
patching, and the GUI can offer extra folders later.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import HearthError, ModelFileError
from core.models.hub.settings import HubSettings
from core.models.library.entries import ModelEntry, Source, describe
from core.models.library.scan import (
    Found,
    default_lmstudio_roots,
    default_ollama_roots,
    scan_folder,
    scan_hf_cache,
    scan_lmstudio,
    scan_ollama,
)
from core.paths import models_dir

__all__ = ["Library", "LibraryError", "ModelEntry"]


class LibraryError(HearthError):
    """A library operation (import, remove, lookup) cannot be done."""


def _bundled_default() -> Path | None:
    from core.models.bundled import default_model_path

    return default_model_path()


def _bundled_chat() -> Path | None:
    """The bundled chat model once the app has unpacked it (a scan never copies it)."""
    from core.models.chat_model import installed_chat_model

    return installed_chat_model()


@dataclass
class Library:
    """Scans model folders; every attribute is a root that defaults to the real one."""

    hf_cache: Path | None = None  # None: HF_HUB_CACHE / HF_HOME at scan time
    ollama_roots: list[Path] = field(default_factory=default_ollama_roots)
    lmstudio_roots: list[Path] = field(default_factory=default_lmstudio_roots)
    imported_dir: Path | None = None  # None: <hearth home>/models/imported
    default_model: Callable[[], Path | None] | None = _bundled_default
    chat_model: Callable[[], Path | None] | None = _bundled_chat

    def _imported(self) -> Path:
        folder = self.imported_dir or models_dir() / "imported"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _cache(self) -> Path:
        return self.hf_cache or HubSettings.from_env().cache_dir

    def models(self) -> list[ModelEntry]:
        """Every model found now, default first, then by source and name."""
        entries: list[ModelEntry] = []
        for bundled in (self.default_model, self.chat_model):
            path = bundled() if bundled else None
            if path is not None and path.is_file():
                entries.append(describe(id=f"default:{path.name}", name=path.name,
                                        source="default", parts=[path], removable=False))

        def add(source: Source, items: list[Found], removable: bool) -> None:
            for item in items:
                entries.append(describe(id=f"{source}:{item.key}", name=item.name,
                                        source=source, parts=item.parts, removable=removable,
                                        repo_id=item.repo_id))

        add("hf", scan_hf_cache(self._cache()), True)
        add("imported", scan_folder(self._imported()), True)
        for root in self.ollama_roots:
            add("ollama", scan_ollama(root), False)
        for root in self.lmstudio_roots:
            add("lmstudio", scan_lmstudio(root), False)
        return entries

    def find(self, ref: str) -> ModelEntry:
        """The entry whose id, name or path is ``ref`` (a unique name suffix also works)."""
        entries = self.models()
        exact = [e for e in entries if ref in (e.id, e.name, str(e.path))]
        if not exact:
            exact = [e for e in entries if e.name.endswith(ref) or e.id.endswith(ref)]
        if len(exact) == 1:
            return exact[0]
        if not exact:
            raise LibraryError(f"No model called {ref!r} in the library; run 'hearth-cli "
                               f"models' to see the names.")
        raise LibraryError(f"{ref!r} matches {len(exact)} models; use the id shown by "
                           f"'hearth-cli models'.")

    def import_file(self, path: Path, *, link: bool = False) -> ModelEntry:
        """Copy (or link) a GGUF into Hearth's imported models; the copy is verified first.

        A copy goes to a temporary name and is renamed only when complete, so a crash never
        leaves a half file that looks like a model.
        """
        from core.gguf.reader import read_local

        path = Path(path).expanduser().resolve()
        read_local(path)  # raises ModelFileError with a clear message if not a GGUF
        target = self._imported() / path.name
        if target.exists() or target.is_symlink():
            raise LibraryError(f"A model named {path.name} is already imported; remove it "
                               f"first or rename the file.")
        if link:
            target.symlink_to(path)
        else:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        return self.find(f"imported:{target.name}")

    def remove(self, entry: ModelEntry) -> None:
        """Delete a model Hearth owns; other apps' models and the bundled one are refused."""
        if entry.source == "ollama":
            raise LibraryError(f"{entry.name} belongs to Ollama; remove it with "
                               f"'ollama rm {entry.name}'.")
        if entry.source == "lmstudio":
            raise LibraryError(f"{entry.name} belongs to LM Studio; remove it there.")
        if not entry.removable:
            raise LibraryError(f"{entry.name} is bundled with Hearth and cannot be removed.")
        if entry.source == "imported":
            for part in entry.parts:
                part.unlink()  # a link: only the link goes, the user's file stays
            return
        _remove_from_hf_cache(entry.parts)


def _remove_from_hf_cache(parts: tuple[Path, ...]) -> None:
    """Unlink snapshot files and delete each blob no other snapshot still points to."""
    for link in parts:
        if "snapshots" not in link.parts:
            raise ModelFileError(f"{link} is not inside a Hugging Face cache snapshot.")
        repo_root = link.parents[len(link.parts) - link.parts.index("snapshots") - 1]
        blob = link.resolve()
        link.unlink()
        still_used = any(
            p.is_symlink() and p.resolve() == blob
            for p in (repo_root / "snapshots").rglob("*")
        )
        if not still_used and blob.is_file() and blob.parent == repo_root / "blobs":
            blob.unlink()
        folder = link.parent
        while folder != repo_root / "snapshots" and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
