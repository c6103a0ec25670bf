"""Retrieval conventions of embedding families, chosen by name and architecture, and the
JSON a front end returns beside a documents answer."""

from __future__ import annotations

import json

import pytest

from core.chat.documents import DocumentStore, IndexReport, build_document_prompt
from core.chat.documents.embedders import is_embedding_model
from core.chat.documents.embedding import BGE_EN_QUERY, conventions_for
from core.chat.documents.tokens import ModelTokenizer


@pytest.mark.parametrize(("name", "arch", "query", "document"), [
    ("nomic-embed-text-v1.5.Q8_0.gguf", "nomic-bert", "search_query: ", "search_document: "),
    ("bge-small-en-v1.5-q8_0.gguf", "bert", BGE_EN_QUERY, ""),
    ("embeddinggemma-300m-Q8_0.gguf", "gemma-embedding", "task: search result | query: ",
     "title: none | text: "),
    ("EmbeddingGemma-300M", "", "task: search result | query: ", "title: none | text: "),
    ("gemma-3-270m-q4_k_m.gguf", "gemma3", "", ""),
    ("all-MiniLM-L6-v2", "bert", "", ""),
])
def test_each_family_gets_its_prefixes(name: str, arch: str, query: str,
                                       document: str) -> None:
    assert conventions_for(name, arch) == (query, document)


def test_embedding_models_are_told_from_chat_models() -> None:
    assert is_embedding_model("nomic-embed-text-v1.5", "nomic-bert")
    assert is_embedding_model("Qwen3-Embedding-0.6B", "qwen3")
    assert not is_embedding_model("gemma-3-270m-q4_k_m", "gemma3")
    # a pooling_type key in the GGUF says so whatever the name and architecture
    assert is_embedding_model("gte-qwen2-1.5b-instruct", "qwen2", has_pooling=True)


def test_the_answer_json_lists_sources_and_citations(
        indexed: tuple[DocumentStore, IndexReport], doc_tokenizer: ModelTokenizer) -> None:
    prompt = build_document_prompt(["corpus"], "Which archives are kept in Oslo?", [], 400,
                                   doc_tokenizer, store=indexed[0])
    data = json.loads(json.dumps(prompt.to_json("Kept in Oslo [1] and [40].")))
    assert [s["n"] for s in data["sources"]] == list(range(1, len(prompt.sources) + 1))
    assert data["cited"] == [1] and data["unknown_citations"] == [40]
    assert {"source", "page", "lines", "text"} <= set(data["sources"][0])
    assert data["breakdown"]["documents"] <= 400 and data["retrieval"] == "bm25"
