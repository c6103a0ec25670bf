"""Documents fixtures: the written corpus and its index, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.chat.documents import DocumentStore, Indexer, IndexReport
from core.chat.documents.tokens import ModelTokenizer
from tests.documents.corpus import Fact, write_corpus


@pytest.fixture(scope="session")
def doc_tokenizer(default_model: Path) -> Iterator[ModelTokenizer]:
    """The bundled model's tokenizer (chunking, and the budget of Gemma prompts)."""
    tokenizer = ModelTokenizer.open(default_model)
    yield tokenizer
    tokenizer.close()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Fact]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, write_corpus(root)


@pytest.fixture(scope="session")
def indexed(corpus: tuple[Path, list[Fact]], doc_tokenizer: ModelTokenizer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DocumentStore,
                                                                         IndexReport]]:
    """The whole corpus in collection "corpus" of a store (read-only for tests)."""
    store = DocumentStore(tmp_path_factory.mktemp("store") / "documents.sqlite3")
    collection = store.create_collection("corpus")
    store.add_roots(collection, [corpus[0]])
    report = Indexer(store, doc_tokenizer).index("corpus")
    yield store, report
    store.close()
