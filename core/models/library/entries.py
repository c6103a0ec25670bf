"""One model on disk, described from its GGUF header.

The header is read by :func:`core.gguf.info.read_local` (llama.cpp's own C reader: a few
milliseconds even for Gemma 3's 262k-token vocabulary, where gguf-py's ``GGUFReader`` spends
seconds building Python objects) and cached in memory by path, size and mtime. Nothing is
written to disk: every field can be derived again from the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import HearthError
from core.models.hub.names import quant_from_name

Source = Literal["default", "hf", "imported", "ollama", "lmstudio"]


@dataclass(frozen=True)
class ModelEntry:
    """A model Hearth can run, wherever it lives.

    ``id`` is unique and stable across scans (``source:key``); ``path`` is the file to load
    (the first shard of a split model); ``removable`` says whether Hearth owns the files.
    ``problem`` is set (and the metadata left empty) when the header cannot be read.
    """

    id: str
    name: str
    source: Source
    path: Path
    size: int
    quant: str | None = None
    architecture: str | None = None
    n_params: int | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    removable: bool = False
    repo_id: str | None = None
    parts: tuple[Path, ...] = field(default_factory=tuple)
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["parts"] = [str(p) for p in self.parts]
        return data


def describe(
    *,
    id: str,
    name: str,
    source: Source,
    parts: list[Path],
    removable: bool,
    repo_id: str | None = None,
) -> ModelEntry:
    """A :class:`ModelEntry` for ``parts`` (one file, or every shard in order)."""
    from core.gguf.reader import read_local

    size = sum(p.stat().st_size for p in parts)
    base: dict[str, Any] = {
        "id": id, "name": name, "source": source, "path": parts[0], "size": size,
        "removable": removable, "repo_id": repo_id, "parts": tuple(parts)}
    try:
        infos = [read_local(p) for p in parts]
    except HearthError as err:
        return ModelEntry(**base, quant=quant_from_name(parts[0].name), problem=str(err))
    head = infos[0]
    quant = head.file_type_name if head.file_type is not None else quant_from_name(name)
    return ModelEntry(
        **base,
        quant=quant,
        architecture=head.architecture,
        n_params=sum(i.n_params for i in infos),
        context_length=head.n_ctx_train or None,
        has_chat_template=bool(head.chat_template),
    )
