"""Hearth's documents extension on chat completions, through the official ``openai`` client
(``extra_body={"hearth": {...}}``) on the real default model: the collections' passages go
into the prompt under the budget, and the reply names the sources it was given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from core.chat.documents import DocumentStore, Indexer
from server.documents import Documents
from tests.documents.corpus import fact_sentence
from tests.server.conftest import Running, StartServer

FILLER = ("The reading room opens at nine and the staff keep a ledger of visitors. " * 6)


@pytest.fixture(scope="module")
def docs_api(start_server: StartServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, DocumentStore]]:
    root = tmp_path_factory.mktemp("docs-api")
    folder = root / "notes"
    folder.mkdir()
    for i in range(20):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\n{FILLER}\n\n{fact_sentence(i)}\n",
                                           encoding="utf-8")
    store = DocumentStore(root / "documents.sqlite3")
    store.add_roots(store.create_collection("notes"), [folder])
    assert len(Indexer(store).index("notes").added) == 20
    running = start_server()
    running.srv.app.state.documents = Documents(store)  # the store the server reads
    yield running, store
    store.close()


def _ask(api: Running, question: str, hearth: dict[str, Any] | None = None,
         **kwargs: Any) -> Any:
    extra = {"extra_body": {"hearth": hearth}} if hearth is not None else {}
    return api.client().chat.completions.create(
        model=api.model, messages=[{"role": "user", "content": question}], max_tokens=8,
        temperature=0, **extra, **kwargs)


def test_a_chat_completion_answers_from_a_collection_and_names_its_sources(
        docs_api: tuple[Running, DocumentStore]) -> None:
    api, _ = docs_api
    question = "Where is the zq007ular archive kept?"
    reply = _ask(api, question, {"collections": ["notes"], "budget": 200})
    hearth = reply.model_extra["hearth"]
    sources = hearth["sources"]
    assert sources and Path(sources[0]["source"]).name == "note7.md"
    assert fact_sentence(7) in sources[0]["text"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert hearth["breakdown"]["documents"] <= 200 and hearth["breakdown"]["budget"] == 200
    assert hearth["retrieval"] == "bm25"
    assert set(hearth["cited"]) <= {s["n"] for s in sources}  # never a number not sent
    # the passages went into the prompt: the same question alone is far shorter
    plain = _ask(api, question)
    assert "hearth" not in (plain.model_extra or {})
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens + hearth["breakdown"][
        "documents"] // 2


def test_a_stream_ends_with_the_same_sources(docs_api: tuple[Running, DocumentStore]) -> None:
    api, _ = docs_api
    options = {"collections": ["notes"], "budget": 150}
    whole = _ask(api, "Since when is the zq012ular archive kept?", options)
    chunks = list(_ask(api, "Since when is the zq012ular archive kept?", options, stream=True))
    extension = [c.model_extra["hearth"] for c in chunks if "hearth" in (c.model_extra or {})]
    assert len(extension) == 1 and not chunks[-1].choices
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert extension[0]["sources"] == whole.model_extra["hearth"]["sources"]


def test_bad_documents_requests_get_one_clear_error(
        docs_api: tuple[Running, DocumentStore]) -> None:
    api, _ = docs_api
    with pytest.raises(openai.NotFoundError, match=r"no collection named 'manuals'.*notes"):
        _ask(api, "What is in the manual?", {"collections": ["manuals"]})
    with pytest.raises(openai.BadRequestError, match=r"hearth\.budget"):
        _ask(api, "Where is it?", {"collections": ["notes"], "budget": 0})
    with pytest.raises(openai.BadRequestError, match="last message must be the user"):
        api.client().chat.completions.create(
            model=api.model, max_tokens=4, extra_body={"hearth": {"collections": ["notes"]}},
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])


def test_a_question_no_document_answers_goes_out_with_no_sources(
        docs_api: tuple[Running, DocumentStore]) -> None:
    api, _ = docs_api
    reply = _ask(api, "qwxyzzy plover", {"collections": ["notes"]})
    hearth = reply.model_extra["hearth"]
    assert hearth["sources"] == [] and hearth["breakdown"]["documents"] == 0
    assert reply.choices[0].message.content is not None
