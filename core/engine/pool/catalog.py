"""Every runnable model on this machine, by a stable id made from its file name.

The ids are what an API client puts in ``model`` and what ``/v1/models`` lists: the file
name without ``.gguf`` (and without a split model's ``-00001-of-00003``), e.g.
``gemma-3-270m-q4_k_m``; an Ollama model, whose file is a content hash, goes by its Ollama
name (``llama3.2:latest``). When two files would share an id the first keeps it (the
library's order: bundled default, Hugging Face cache, imports, Ollama, LM Studio) and the
next gets ``@`` and where it lives (its repo, else its source). The library is scanned
again on each call, so a file dropped into Hearth's models folder appears at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import HearthError
from core.models.hub.names import model_key
from core.models.library import Library, ModelEntry
from core.models.library.entries import describe
from core.models.library.scan import scan_folder
from core.paths import models_dir


class UnknownModelError(HearthError):
    """No runnable model has that id, name or path (the API answers 404)."""

    def __init__(self, message: str, model: str) -> None:
        super().__init__(message)
        self.model = model


@dataclass(frozen=True)
class CatalogModel:
    """A runnable model and its id."""

    id: str
    entry: ModelEntry

    @property
    def path(self) -> Path:
        return self.entry.path


def id_from_file(path: Path | str) -> str:
    """The id part a file name gives (``x-00001-of-00002.gguf`` -> ``x``)."""
    name = model_key(Path(path).name)
    return name[:-5] if name.lower().endswith(".gguf") else name


def _base_id(entry: ModelEntry) -> str:
    if entry.source == "ollama":
        return entry.name.rsplit("/", 1)[-1] if "/" in entry.name else entry.name
    return id_from_file(entry.path)


def _dropped(folder: Path, known: set[str]) -> list[ModelEntry]:
    """GGUFs put straight into Hearth's models folder (the library looks in ``imported/``)."""
    out = []
    for item in scan_folder(folder):
        if str(item.parts[0].resolve()) in known:
            continue
        out.append(describe(id=f"models:{item.key}", name=item.name, source="imported",
                            parts=item.parts, removable=False))
    return out


class Catalog:
    """The library plus Hearth's models folder, with ids. ``library`` and ``folder`` are
    injectable (tests scan fixture folders)."""

    def __init__(self, library: Library | None = None,
                 folder: Callable[[], Path] = models_dir) -> None:
        self.library = library or Library()
        self.folder = folder

    def models(self) -> list[CatalogModel]:
        """Every runnable model now (unreadable files are left out), with unique ids."""
        entries = [e for e in self.library.models() if e.usable]
        known = {str(e.path.resolve()) for e in entries}
        entries += [e for e in _dropped(self.folder(), known) if e.usable]
        taken: set[str] = set()
        out: list[CatalogModel] = []
        for entry in entries:
            base = _base_id(entry)
            mid = base
            if mid in taken:
                mid = f"{base}@{entry.repo_id or entry.source}"
            n = 2
            while mid in taken:
                mid, n = f"{base}@{entry.repo_id or entry.source}-{n}", n + 1
            taken.add(mid)
            out.append(CatalogModel(mid, entry))
        return out

    def resolve(self, ref: str) -> Path:
        """The file for an id, a library id or name, or a path to a GGUF file."""
        models = self.models()
        for model in models:
            if ref == model.id:
                return model.path
        for model in models:
            if ref in (model.entry.id, model.entry.name, str(model.path)):
                return model.path
        candidate = Path(ref).expanduser()
        if candidate.suffix.lower() == ".gguf" and candidate.is_file():
            return candidate
        ids = ", ".join(m.id for m in models[:8]) + (" …" if len(models) > 8 else "")
        raise UnknownModelError(f"No model called '{ref}' on this machine; the models here "
                                f"are: {ids or 'none'} (hearth-cli models lists them all).",
                                ref)
