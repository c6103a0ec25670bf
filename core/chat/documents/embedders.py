"""Which embedding model a collection uses, found in the library and opened for indexing.

Vectors are optional: with no embedding GGUF on the machine a collection is searched by
BM25 alone (it works offline on first launch). When one is in the library (nomic-embed-text,
bge, EmbeddingGemma, anything with an embedding architecture), ``auto`` picks it; the
collection records it (``identity``: path and size) and its vectors are made again when
another model is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.chat.documents.embedding import DocumentEmbedder, is_embedding_model
from core.chat.documents.errors import DocumentsError
from core.chat.documents.store import Collection
from core.engine.process.client import EngineClient

__all__ = ["EmbedderChoice", "choose_embedder", "find_embedding_model", "identity_of",
           "is_embedding_model", "open_embedder", "path_of", "worker_embedder"]


def identity_of(path: Path) -> str:
    """What a collection records about its embedding model: the file and its size."""
    path = Path(path).resolve()
    return f"{path}#{path.stat().st_size}"


def path_of(identity: str) -> Path | None:
    path, _, size = identity.rpartition("#")
    if not path or not size.isdigit():
        return None
    candidate = Path(path)
    try:
        return candidate if candidate.stat().st_size == int(size) else None
    except OSError:
        return None


def find_embedding_model() -> Path | None:
    """The first usable embedding GGUF in the library, if any."""
    from core.models.library import Library

    for entry in Library().models():
        if entry.usable and is_embedding_model(entry.name, entry.architecture):
            return entry.path
    return None


def open_embedder(path: Path, pooling: str | None = None) -> DocumentEmbedder:
    """An in-process embedder for ``path`` (the GGUF's pooling, else mean), with the
    family's retrieval prefixes. The command line indexes in-process: indexing is kill-safe,
    so a crash in llama.cpp costs that command, never the index."""
    from core.engine.runtime.embedding import Embedder

    embedder = Embedder(Path(path), pooling=pooling)
    name = f"{embedder.name} {embedder.model.name}"
    arch = embedder.model.architecture
    pooled = embedder.model.meta(f"{arch}.pooling_type") is not None
    return DocumentEmbedder.for_model(name, arch, embedder.embed, identity_of(path), pooled)


def worker_embedder(client: EngineClient, path: Path,
                    pooling: str | None = None) -> DocumentEmbedder:
    """An embedder that computes in the engine's worker process (``EngineClient.embed``,
    the weights loaded there once): what the app uses, so a crash ends the worker only."""
    from core.gguf.reader import read_local

    info = read_local(Path(path))
    name = f"{Path(path).name} {info.name or ''}"
    pooled = f"{info.architecture}.pooling_type" in info.metadata
    return DocumentEmbedder.for_model(
        name, info.architecture, lambda texts: client.embed(texts, str(path), pooling),
        identity_of(path), pooled)


@dataclass
class EmbedderChoice:
    embedder: DocumentEmbedder | None
    notes: list[str] = field(default_factory=list)


def choose_embedder(spec: str, collection: Collection | None = None) -> EmbedderChoice:
    """``spec``: a GGUF path, ``none``, or ``auto`` (the model the collection already uses
    when it is still there, else one from the library, else none)."""
    if spec == "none":
        return EmbedderChoice(None)
    if spec != "auto":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DocumentsError(f"Embedding model not found: {path}.")
        chosen = open_embedder(path)
        if chosen.kind == "embedding":
            return EmbedderChoice(chosen)
        return EmbedderChoice(chosen, [f"{path.name} is a generative model, not an embedding "
                                       "model: its vectors rank far below keyword search, so "
                                       "search uses them only with --mode dense or hybrid"])
    notes: list[str] = []
    if collection is not None and collection.embed_model:
        recorded = path_of(collection.embed_model)
        if recorded is not None:
            return EmbedderChoice(open_embedder(recorded))
        notes.append(f"{collection.name}'s embedding model is gone "
                     f"({collection.embed_model.rpartition('#')[0]}); keyword search only")
    found = find_embedding_model()
    if found is None:
        return EmbedderChoice(None, notes)
    return EmbedderChoice(open_embedder(found), notes)
