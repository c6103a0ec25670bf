"""Search, file listing and repo details against the local test hub; name parsing."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.models.hub.errors import HubOfflineError, RepoNotFoundError, UnsafeFilenameError
from core.models.hub.files import list_models
from core.models.hub.names import check_repo_filename, quant_from_name, split_part
from core.models.hub.search import card_summary, repo_details, search_models
from tests.fixtures.hub_server import DEFAULT_REPO, EVIL_REPO, GATED_REPO, TINY_REPO


def test_search_sorts_by_downloads_likes_and_recency(test_hub):
    by = {s: [h.repo_id for h in search_models("hearth-test", sort=s)]
          for s in ("downloads", "likes", "recent")}
    assert by["downloads"][:3] == [DEFAULT_REPO, TINY_REPO, GATED_REPO]
    assert by["likes"][0] == GATED_REPO
    assert by["recent"][0] == TINY_REPO
    hit = search_models("tiny", limit=1)
    assert [h.repo_id for h in hit] == [TINY_REPO] and hit[0].downloads == 50
    assert search_models("gated")[0].gated
    assert search_models("no-such-model") == []
    query = next(r[1] for r in test_hub.requests if r[1] == "/api/models")
    assert query  # served by the hub's search endpoint


def test_unknown_sort_is_a_config_error(test_hub):
    with pytest.raises(ConfigError, match="Unknown sort"):
        search_models("x", sort="best")


def test_listing_groups_shards_and_carries_sha256(test_hub):
    models = {m.name: m for m in list_models(TINY_REPO)}
    assert set(models) == {"tiny-Q8_0.gguf", "tiny-Q4_K_M.gguf", "tiny-F16.gguf",
                           "mmproj-tiny-F16.gguf"}
    split = models["tiny-F16.gguf"]
    assert [p.path for p in split.parts] == ["tiny-F16-00001-of-00002.gguf",
                                             "tiny-F16-00002-of-00002.gguf"]
    assert split.complete and split.size == sum(p.size for p in split.parts)
    repo = test_hub.repos[TINY_REPO]
    q8 = models["tiny-Q8_0.gguf"]
    assert q8.parts[0].sha256 == repo.files["tiny-Q8_0.gguf"].sha256
    assert q8.size == repo.files["tiny-Q8_0.gguf"].size
    assert (q8.quant, q8.quant_confirmed, q8.cached) == ("Q8_0", False, False)
    assert models["mmproj-tiny-F16.gguf"].projector
    assert list(models)[-1] == "mmproj-tiny-F16.gguf"  # projectors last


def test_headers_confirm_the_quant_and_labeler_labels(test_hub):
    models = list_models(TINY_REPO, read_headers=True,
                         labeler=lambda m: "fits" if m.size < 2_000_000 else "too big")
    by = {m.name: m for m in models}
    assert by["tiny-Q4_K_M.gguf"].quant_confirmed and by["tiny-Q4_K_M.gguf"].quant == "Q4_K_M"
    assert by["tiny-Q4_K_M.gguf"].label == "fits" and by["tiny-Q8_0.gguf"].label == "too big"


def test_real_default_model_repo(test_hub):
    [m] = list_models(DEFAULT_REPO, read_headers=True)
    assert m.quant == "Q4_K_M" and m.quant_confirmed and m.size > 200_000_000
    assert test_hub.sent[(DEFAULT_REPO, m.name)] < 8 << 20  # only the header was read


def test_unsafe_names_are_not_offered(test_hub):
    names = [p.path for m in list_models(EVIL_REPO) for p in m.parts]
    assert names == ["tiny-Q8_0.gguf"]


def test_repo_details_give_licence_and_summary(test_hub):
    d = repo_details(TINY_REPO)
    assert d.license == "apache-2.0" and not d.gated
    assert d.summary == "A tiny GGUF model made for Hearth's tests. It says nothing useful."
    assert repo_details(GATED_REPO).gated
    with pytest.raises(RepoNotFoundError, match="not found"):
        repo_details("nobody/nothing")


def test_offline_search_is_refused_and_listing_uses_the_cache(test_hub, monkeypatch):
    from core.models.hub.download import Downloader

    Downloader().download(TINY_REPO, "tiny-Q4_K_M.gguf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    test_hub.requests.clear()
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE"):
        search_models("tiny")
    [m] = list_models(TINY_REPO)
    assert m.name == "tiny-Q4_K_M.gguf" and m.cached
    assert m.parts[0].sha256 == test_hub.repos[TINY_REPO].files[m.name].sha256
    assert test_hub.requests == []


@pytest.mark.parametrize(("name", "quant"), [
    ("gemma-3-270m-it-Q4_K_M.gguf", "Q4_K_M"), ("x.IQ2_XXS.gguf", "IQ2_XXS"),
    ("m-f16.gguf", "F16"), ("Llama-Q8_0-00001-of-00003.gguf", "Q8_0"),
    ("model-BF16.gguf", "BF16"), ("a-UD-Q4_K_XL.gguf", "Q4_K_XL"), ("foo.gguf", None),
    ("phi-fp16.gguf", "F16"), ("m.IQ4_XS.gguf", "IQ4_XS"),
])
def test_quant_from_name(name, quant):
    assert quant_from_name(name) == quant


def test_split_names():
    part = split_part("M-Q8_0-00002-of-00003.gguf")
    assert (part.stem, part.index, part.count) == ("M-Q8_0", 2, 3)
    assert split_part("M-Q8_0.gguf") is None


@pytest.mark.parametrize("name", ["", "../x.gguf", "a/../../x.gguf", "/abs.gguf", "a\\b.gguf",
                                  "C:/x.gguf", "a//b.gguf", "./x.gguf", "x\x00.gguf"])
def test_unsafe_repo_filenames(name):
    with pytest.raises(UnsafeFilenameError):
        check_repo_filename(name)


def test_safe_repo_filenames():
    assert check_repo_filename("sub/dir/model.gguf") == "sub/dir/model.gguf"


def test_card_summary_skips_front_matter_and_headings():
    card = "---\nlicense: mit\n---\n# Title\n\n| a | b |\n\nFirst real\nparagraph.\n\nMore."
    assert card_summary(card) == "First real paragraph."
