"""What the model sees: the seed's template exactly, a budget never exceeded (counted with
the model's tokenizer), citations that point at passages in the prompt, "not found" when
nothing matches, and every token accounted for."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.chat.documents import (
    DocumentsError,
    DocumentStore,
    IndexReport,
    Retriever,
    build_document_prompt,
)
from core.chat.documents.template import SEED_TEMPLATE, render
from core.chat.documents.tokens import ModelTokenizer
from core.engine import ChatMessage, GenerationRequest
from core.engine.runtime.prompt import PromptBuilder
from tests.documents.corpus import Fact

# The seed (seed-inference-optimization.txt, "Template Format"), line for line.
SEED_TEXT = """[CONTEXT]
{relevant_documents}

[QUESTION]
{user_query}

[INSTRUCTION]
Answer based on context. If not in context, say "not found".
Format: 1-2 sentences max.

[ANSWER]"""

QUESTIONS = ["Where is the zq017ular archive kept?", "Which archives are kept in Oslo?",
             "river stone lantern harbor meadow", "東京タワーの高さは何メートルですか",
             "list every archive kept since 1950"]


def test_the_template_renders_exactly_as_the_seed_writes_it() -> None:
    assert SEED_TEMPLATE == SEED_TEXT
    rendered = render(SEED_TEMPLATE, "DOCS {user_query}", "Q?")
    assert rendered == SEED_TEXT.replace("{relevant_documents}", "DOCS {user_query}").replace(
        "[QUESTION]\n{user_query}", "[QUESTION]\nQ?")


def test_an_edited_template_must_keep_its_placeholders(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    with pytest.raises(DocumentsError, match="user_query"):
        build_document_prompt(["corpus"], "q", [], 600, doc_tokenizer, store=indexed[0],
                              template="[CONTEXT]\n{relevant_documents}\n")
    custom = "Docs:\n{relevant_documents}\nQ: {user_query}\nA:"
    prompt = build_document_prompt(["corpus"], "zq017ular", [], 600, doc_tokenizer,
                                   store=indexed[0], template=custom)
    assert prompt.messages[-1].content == render(custom, prompt.documents, "zq017ular")


@pytest.mark.parametrize("budget", [40, 120, 600, 1500])
def test_the_budget_is_never_exceeded(budget: int, indexed: tuple[DocumentStore, IndexReport],
                                      doc_tokenizer: ModelTokenizer,
                                      default_model: Path) -> None:
    store = indexed[0]
    retriever = Retriever(store)
    for question in QUESTIONS:
        prompt = build_document_prompt(["corpus"], question, [], budget, doc_tokenizer,
                                       retriever=retriever)
        # counted again from scratch, with the model's own tokenizer, on the text sent
        sent = prompt.messages[-1].content
        assert prompt.documents in sent
        n = len(doc_tokenizer.model.tokenize(prompt.documents, False, False))
        assert n <= budget, (question, n)
        assert prompt.breakdown.documents == n
        if budget >= 600 and prompt.breakdown.left_out:
            assert n > budget * 0.6  # passages were left out: the block is filled first
    small = build_document_prompt(["corpus"], QUESTIONS[2], [], 40, doc_tokenizer, store=store)
    assert small.sources and small.sources[0].kind == "cut"  # one chunk would not fit: cut


def test_each_citation_points_to_a_chunk_in_the_prompt(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    store = indexed[0]
    prompt = build_document_prompt(["corpus"], "Which archives are kept in Oslo or Lima?", [],
                                   600, doc_tokenizer, store=store)
    sent = prompt.messages[-1].content
    assert len(prompt.sources) >= 2
    chunks = store.chunks([i for s in prompt.sources for i in s.chunk_ids])
    for s in prompt.sources:
        marker = f"[{s.n}] {s.label()}\n"
        assert marker in sent
        body = sent.split(marker, 1)[1]
        assert body.startswith(s.text.strip())  # the passage under its number is its text
        for chunk_id in s.chunk_ids:
            assert chunks[chunk_id].path == s.path
            assert " ".join(chunks[chunk_id].text.split())[:60] in " ".join(body.split())
    reply = (f"It is kept in two places [1][{len(prompt.sources)}], see also [1, 2] and "
             f"[{len(prompt.sources) + 5}].")
    cited = prompt.cite(reply)
    assert [c.n for c in cited.cited] == list(dict.fromkeys([1, len(prompt.sources), 2]))
    assert cited.unknown == [len(prompt.sources) + 5]  # never pinned to some other chunk


def test_a_question_nothing_answers_goes_out_with_the_not_found_instruction(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    question = "What is the airspeed velocity of an unladen swallow?"
    prompt = build_document_prompt(["corpus"], question, [], 600, doc_tokenizer,
                                   store=indexed[0])
    assert prompt.sources == [] and prompt.documents == ""
    assert prompt.messages[-1] == ChatMessage("user", render(SEED_TEMPLATE, "", question))
    assert 'If not in context, say "not found".' in prompt.messages[-1].content


def test_the_whole_document_goes_in_when_it_fits(
        indexed: tuple[DocumentStore, IndexReport], corpus: tuple[Path, list[Fact]],
        doc_tokenizer: ModelTokenizer) -> None:
    fact = next(f for f in corpus[1] if f.path.suffix == ".md")
    prompt = build_document_prompt(["corpus"], fact.code, [], 1500, doc_tokenizer,
                                   store=indexed[0])
    first = prompt.sources[0]
    assert first.kind == "document" and first.path == str(fact.path)
    assert " ".join(first.text.split()) == " ".join(fact.path.read_text().split())
    narrow = build_document_prompt(["corpus"], fact.code, [], 200, doc_tokenizer,
                                   store=indexed[0])
    assert narrow.sources[0].kind == "chunk" and fact.code in narrow.sources[0].text


def test_the_breakdown_accounts_for_every_part(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    history = [ChatMessage("system", "You are terse."), ChatMessage("user", "Hello there"),
               ChatMessage("assistant", "Hi. Ask me about the archives.")]
    prompt = build_document_prompt(["corpus"], "Which archives are in Kyoto?", history, 300,
                                   doc_tokenizer, store=indexed[0])
    b = prompt.breakdown
    count = doc_tokenizer.count
    assert prompt.messages[0].role == "system" and "You are terse." in prompt.messages[0].content
    assert b.system == count(prompt.messages[0].content)
    assert b.history == count("Hello there") + count("Hi. Ask me about the archives.")
    assert b.documents == count(prompt.documents) <= 300
    assert b.question == count(render(SEED_TEMPLATE, "", "Which archives are in Kyoto?"))
    assert b.left_out and b.left_out_tokens == sum(x.tokens for x in b.left_out)
    exact = len(PromptBuilder(doc_tokenizer.model).build(
        GenerationRequest(messages=prompt.messages)).tokens)
    assert b.prompt_total == exact
    assert exact >= b.system + b.documents + b.history + b.question  # plus turn markers
    assert "left out" in b.text() and "documents" in b.text()


def test_old_turns_are_dropped_to_fit_the_context(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    history = []
    for i in range(12):
        history += [ChatMessage("user", f"Tell me a long story number {i}. " * 8),
                    ChatMessage("assistant", "Once upon a time. " * 20)]
    prompt = build_document_prompt(["corpus"], "Where is zq017ular?", history, 600,
                                   doc_tokenizer, store=indexed[0], context_limit=1200)
    assert prompt.breakdown.history_dropped > 0
    assert prompt.breakdown.prompt_total is not None and prompt.breakdown.prompt_total <= 1200
    assert prompt.messages[-1].content.startswith("[CONTEXT]")
    assert prompt.messages[1].role == "user"  # whole exchanges dropped, oldest first


def test_document_answers_ask_for_prompt_lookup(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    prompt = build_document_prompt(["corpus"], "zq017ular", [], 600, doc_tokenizer,
                                   store=indexed[0])
    assert prompt.draft == "lookup"
    off = build_document_prompt(["corpus"], "zq017ular", [], 600, doc_tokenizer,
                                store=indexed[0], speculation=False)
    assert off.draft is None
