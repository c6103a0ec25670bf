"""Finding GGUF models where other tools keep them: HF cache, Ollama, LM Studio, Hearth.

Each scanner takes its root folder (injected; the default is the tool's real location) and
returns the model files it finds, grouped (split shards together), read-only. A missing root is
simply empty. Partial downloads never appear: the HF cache only links complete blobs into
``snapshots/``, and Hearth's partials live in ``blobs/*.incomplete``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.models.hub.names import is_gguf, is_projector, model_key, part_index, split_part

OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY = "registry.ollama.ai"


@dataclass(frozen=True)
class Found:
    """A model a scanner found: its key (unique within the source) and files in order."""

    key: str
    name: str
    parts: list[Path]
    repo_id: str | None = None


def default_ollama_roots() -> list[Path]:
    """``$OLLAMA_MODELS``, else ``~/.ollama/models`` (and the Linux service's store)."""
    env = os.environ.get("OLLAMA_MODELS")
    if env:
        return [Path(env)]
    return [Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


def default_lmstudio_roots() -> list[Path]:
    """LM Studio's model folders: current (``~/.lmstudio/models``) and legacy."""
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def _group(files: list[Path], prefix: str) -> list[Found]:
    """Group GGUF files of one folder into models (shards together, projectors skipped)."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        if is_gguf(f.name) and not is_projector(f.name) and f.is_file():
            groups.setdefault(model_key(f.name), []).append(f)
    found = []
    for key, parts in sorted(groups.items()):
        parts.sort(key=lambda p: part_index(p.name))
        first = split_part(parts[0].name)
        if first and len(parts) != first.count:
            continue  # an incomplete split model cannot be loaded
        found.append(Found(f"{prefix}/{key}", f"{prefix}/{key}", parts))
    return found


def scan_hf_cache(cache_dir: Path) -> list[Found]:
    """GGUF models in a Hugging Face hub cache (``models--org--name/snapshots/<rev>/...``)."""
    found: list[Found] = []
    for repo_dir in sorted(cache_dir.glob("models--*")):
        repo_id = "/".join(repo_dir.name.split("--")[1:])
        for snap in sorted((repo_dir / "snapshots").glob("*")):
            by_dir: dict[Path, list[Path]] = {}
            for f in snap.rglob("*.gguf"):
                by_dir.setdefault(f.parent, []).append(f)
            for folder, files in sorted(by_dir.items()):
                rel = folder.relative_to(snap).as_posix()
                prefix = repo_id if rel == "." else f"{repo_id}/{rel}"
                for item in _group(files, prefix):
                    found.append(Found(f"{item.key}@{snap.name[:12]}", item.name, item.parts,
                                       repo_id))
    return found


def scan_ollama(root: Path) -> list[Found]:
    """Models in an Ollama store: manifests name the ``blobs/sha256-<hex>`` model layer."""
    manifests = root / "manifests"
    found = []
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) != 4:
            continue
        host, namespace, model, tag = parts
        try:
            layers = json.loads(manifest.read_text()).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        digest = next((layer.get("digest") for layer in layers
                       if layer.get("mediaType") == OLLAMA_MODEL_MEDIA), None)
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue
        blob = root / "blobs" / digest.replace(":", "-")
        if not blob.is_file():
            continue
        name = f"{model}:{tag}"
        if namespace != "library" or host != OLLAMA_REGISTRY:
            name = f"{namespace}/{name}"
            if host != OLLAMA_REGISTRY:
                name = f"{host}/{name}"
        found.append(Found(name, name, [blob]))
    return found


def scan_lmstudio(root: Path) -> list[Found]:
    """Models in an LM Studio folder: ``<publisher>/<repo>/<file>.gguf``."""
    found = []
    for repo_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        prefix = repo_dir.relative_to(root).as_posix()
        for item in _group(sorted(repo_dir.glob("*.gguf")), prefix):
            found.append(Found(item.key, item.name, item.parts, prefix))
    return found


def scan_folder(folder: Path) -> list[Found]:
    """GGUF files directly in ``folder`` (Hearth's imports: copies or links)."""
    found = []
    for item in _group(sorted(folder.glob("*.gguf")), ""):
        key = item.key.lstrip("/")
        found.append(Found(key, key, item.parts))
    return found
