"""Find GGUF model repositories on the hub and describe one (card summary, licence).

Built on ``HfApi.list_models`` / ``HfApi.model_info``; only GGUF repos are searched (the
``gguf`` tag), since those are the ones llama.cpp can run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from huggingface_hub.utils import build_hf_headers, get_session

from core.errors import ConfigError
from core.models.hub.client import make_api, require_online, translated
from core.models.hub.settings import HubSettings

# Hearth's sort names -> the Hub's.
HubSort = Literal["downloads", "likes", "last_modified"]
SORTS: dict[str, HubSort] = {"downloads": "downloads", "likes": "likes",
                             "recent": "last_modified"}


@dataclass(frozen=True)
class RepoSummary:
    """One search hit: enough to show a row and sort it."""

    repo_id: str
    downloads: int = 0
    likes: int = 0
    last_modified: datetime | None = None
    gated: bool = False
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoDetails:
    """What the model card says, for the picker's detail pane."""

    repo_id: str
    commit: str | None
    license: str | None
    gated: bool
    downloads: int
    likes: int
    summary: str
    tags: tuple[str, ...] = field(default_factory=tuple)


def search_models(
    text: str, *, sort: str = "downloads", limit: int = 20, settings: HubSettings | None = None
) -> list[RepoSummary]:
    """GGUF repos whose name matches ``text``, best first by ``sort`` (downloads/likes/recent)."""
    if sort not in SORTS:
        raise ConfigError(f"Unknown sort {sort!r}; use one of {', '.join(SORTS)}.")
    settings = settings or HubSettings.from_env()
    require_online(settings, "search the hub")
    api = make_api(settings)
    with translated(f"the search for {text!r}"):
        hits = list(api.list_models(search=text, filter="gguf", sort=SORTS[sort], limit=limit))
    return [
        RepoSummary(
            repo_id=h.id,
            downloads=int(h.downloads or 0),
            likes=int(h.likes or 0),
            last_modified=h.last_modified,
            gated=bool(h.gated),
            tags=tuple(h.tags or ()),
        )
        for h in hits
    ]


def card_summary(readme: str, limit: int = 400) -> str:
    """The first prose paragraph of a model card (front matter, headings, tables skipped)."""
    body = re.sub(r"\A---\n.*?\n---\n", "", readme, flags=re.DOTALL)
    for para in re.split(r"\n\s*\n", body):
        text = para.strip()
        if not text or text[0] in "#|<!`[>-" or text.startswith("```"):
            continue
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return ""


def repo_details(
    repo_id: str, *, revision: str = "main", settings: HubSettings | None = None
) -> RepoDetails:
    """Licence, gating, counts and a one-paragraph summary of a repo's model card."""
    settings = settings or HubSettings.from_env()
    require_online(settings, f"describe {repo_id}")
    api = make_api(settings)
    with translated(repo_id):
        info = api.model_info(repo_id, revision=None if revision == "main" else revision)
    licence = None
    if info.card_data is not None:
        licence = info.card_data.get("license")
    summary = ""
    if any(s.rfilename == "README.md" for s in info.siblings or ()):
        url = settings.resolve_url(repo_id, "README.md", info.sha or revision)
        try:
            resp = get_session().get(url, headers=build_hf_headers(token=settings.token or False),
                                     follow_redirects=True, timeout=30)
            if resp.status_code == 200:
                summary = card_summary(resp.text)
        except Exception:  # the summary is a nicety: a failure leaves it empty
            summary = ""
    tags = tuple(info.tags or ())
    if licence is None:
        licence = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    return RepoDetails(
        repo_id=info.id,
        commit=info.sha,
        license=licence,
        gated=bool(info.gated),
        downloads=int(info.downloads or 0),
        likes=int(info.likes or 0),
        summary=summary,
        tags=tags,
    )
