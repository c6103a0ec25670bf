"""Vectors through the engine's real embedder (the bundled Gemma, mean-pooled: weak for
retrieval, but real llama.cpp): stored, searched, fused; recomputed when the collection's
embedding model changes; the same in the worker as in-process; family prefixes applied.

A chat model as embedder pays its 262k-word output head on every token (llama.cpp computes
logits for all outputs when pooling), about 10 ms a token here, so these tests embed a few
short notes rather than the corpus. Its vectors are fused only when asked for (``auto``
fuses an embedding model's: ``retrieval``'s module doc says why)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.chat.documents import DocumentStore, Indexer, Retriever, build_document_prompt
from core.chat.documents.embedders import (
    choose_embedder,
    identity_of,
    open_embedder,
    worker_embedder,
)
from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.tokens import ModelTokenizer
from core.engine import EngineConfig
from core.engine.process.client import EngineClient
from tests.documents.corpus import fact_sentence
from tests.fixtures.variants import make_variants


@pytest.fixture(scope="module")
def gemma(default_model: Path) -> DocumentEmbedder:
    return open_embedder(default_model)  # no pooling in the GGUF: mean


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, doc_tokenizer: ModelTokenizer,
             gemma: DocumentEmbedder) -> Iterator[tuple[DocumentStore, Path]]:
    """Four short notes, one fact each (one chunk each), indexed with vectors."""
    root = tmp_path_factory.mktemp("embedded")
    folder = root / "notes"
    folder.mkdir()
    filler = ("The reading room opens at nine and the staff keep a ledger of visitors.",
              "Maps of the coast were copied by hand before the printing press arrived.",
              "A small garden behind the building grows herbs for the kitchen.",
              "The roof was repaired after the storm, and the windows were replaced.")
    for n, i in enumerate(range(60, 64)):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\n{filler[n]}\n\n{fact_sentence(i)}\n",
                                           encoding="utf-8")
    store = DocumentStore(root / "s.sqlite3")
    store.add_roots(store.create_collection("notes"), [folder])
    report = Indexer(store, doc_tokenizer, embedder=gemma).index("notes")
    assert report.embedded == store.stats(store.collection("notes")).chunks == 4
    yield store, folder
    store.close()


def test_every_chunk_gets_a_vector_and_dense_search_finds_its_own_text(
        embedded: tuple[DocumentStore, Path], gemma: DocumentEmbedder) -> None:
    store, _ = embedded
    collection = store.collection("notes")
    assert collection.embed_model == gemma.identity
    rows = store.query("SELECT id, text, length(vector) FROM chunks ORDER BY id")
    assert all(n == 640 * 4 for _, _, n in rows)  # Gemma 3 270M: 640 float32 per chunk
    chunk_id, text, _ = rows[2]
    dense = Retriever(store, gemma).search(["notes"], text, 3, mode="dense")
    assert dense.mode == "dense"
    # the chunk was embedded in a batch of four, the question alone: ~1e-3 of rounding
    assert dense.hits[0].chunk.id == chunk_id and dense.hits[0].similarity == \
        pytest.approx(1.0, abs=2e-3)
    assert dense.hits[1].similarity is not None and dense.hits[1].similarity < 0.99
    hybrid = Retriever(store, gemma).search(["notes"], "zq062ular", 3, mode="hybrid")
    assert hybrid.mode == "hybrid" and "zq062ular" in hybrid.hits[0].chunk.text
    assert hybrid.hits[0].bm25 is not None and hybrid.hits[0].similarity is not None
    assert "vectors" in hybrid.fused


def test_a_chat_model_is_told_from_an_embedding_model_by_its_gguf(
        default_model: Path, gemma: DocumentEmbedder) -> None:
    assert gemma.kind == "generative"  # gemma3, no pooling_type key, no embedding name
    chosen = choose_embedder(str(default_model))  # asked for by path: used, and told why
    assert chosen.embedder is not None and chosen.embedder.kind == "generative"
    assert any("not an embedding model" in n and "--mode" in n for n in chosen.notes)
    assert DocumentEmbedder.for_model("bge-small-en-v1.5", "bert", gemma.embed).kind == \
        "embedding"
    assert DocumentEmbedder.for_model("some-model", "qwen3", gemma.embed,
                                      has_pooling=True).kind == "embedding"


def test_auto_fuses_vectors_only_from_an_embedding_model(
        embedded: tuple[DocumentStore, Path], gemma: DocumentEmbedder) -> None:
    """A chat model's mean-pooled list is weak (docs bench: 0.23 recall@5 against BM25's
    0.97) and RRF would give it an equal vote: ``auto`` leaves it out and says so."""
    store, _ = embedded
    auto = Retriever(store, gemma).search(["notes"], "zq062ular", 3)
    assert auto.mode == "bm25" and "vectors" not in auto.fused
    assert any("generative model" in n for n in auto.notes)
    assert auto.hits[0].similarity is None
    # the same vectors from an embedder of the embedding kind are fused by default
    kin = DocumentEmbedder(gemma.identity, gemma.embed, kind="embedding")
    fused = Retriever(store, kin).search(["notes"], "zq062ular", 3)
    assert fused.mode == "hybrid" and fused.fused[-1] == "vectors" and not fused.notes
    assert fused.hits[0].similarity is not None


def test_the_worker_computes_the_same_vectors(default_model: Path,
                                              gemma: DocumentEmbedder) -> None:
    texts = ["The zq017ular archive has been kept in Lisbon.", "river stone lantern"]
    with EngineClient() as client:
        client.load(EngineConfig(model_path=default_model, n_ctx=512, warmup=False))
        remote = worker_embedder(client, default_model)
        assert remote.identity == gemma.identity
        assert remote.kind == gemma.kind == "generative"  # the same GGUF facts, read there
        np.testing.assert_allclose(remote.documents(texts), gemma.documents(texts),
                                   atol=2e-3)


def test_family_prefixes_go_in_front_of_the_texts(gemma: DocumentEmbedder) -> None:
    # one text per call on both sides: the same decode, so the same numbers (a batch of
    # several texts rounds a little differently, ~1e-3)
    nomic = DocumentEmbedder.for_model("nomic-embed-text-v1.5", "nomic-bert", gemma.embed)
    text = "Where is the archive kept?"
    query = gemma.embed(["search_query: " + text])[0]
    np.testing.assert_allclose(nomic.query(text), query, atol=1e-5)
    np.testing.assert_allclose(nomic.documents([text])[0],
                               gemma.embed(["search_document: " + text])[0], atol=1e-5)
    assert float(query @ gemma.query(text)) < 0.999  # the prefix changed the vector


def test_a_hybrid_prompt_holds_the_best_of_both_lists(
        embedded: tuple[DocumentStore, Path], gemma: DocumentEmbedder,
        doc_tokenizer: ModelTokenizer) -> None:
    store, _ = embedded
    question = "Where is the zq062ular archive kept?"
    retriever = Retriever(store, gemma)
    best_words = retriever.search(["notes"], question, 1, mode="bm25").hits[0].chunk.id
    best_vector = retriever.search(["notes"], question, 1, mode="dense").hits[0].chunk.id
    prompt = build_document_prompt(["notes"], question, [], 600, doc_tokenizer,
                                   retriever=retriever, mode="hybrid")
    assert prompt.search.mode == "hybrid"
    used = {i for s in prompt.sources for i in s.chunk_ids}
    assert {best_words, best_vector} <= used
    assert prompt.breakdown.documents <= 600


def test_indexing_again_embeds_nothing_and_a_new_model_re_embeds_all(
        embedded: tuple[DocumentStore, Path], gemma: DocumentEmbedder,
        doc_tokenizer: ModelTokenizer) -> None:
    store, _ = embedded
    assert Indexer(store, doc_tokenizer, embedder=gemma).index("notes").embedded == 0
    before = dict(store.query("SELECT id, vector FROM chunks"))
    other_path = make_variants(types=("Q8_0",))["Q8_0"]
    other = open_embedder(other_path)
    report = Indexer(store, doc_tokenizer, embedder=other).index("notes")
    assert report.embedded == len(before)  # every vector made again with the new model
    assert store.collection("notes").embed_model == identity_of(other_path)
    after = dict(store.query("SELECT id, vector FROM chunks"))
    assert after.keys() == before.keys() and any(after[i] != before[i] for i in before)
    # searching with the old model now tells the user and falls back to keywords
    result = Retriever(store, gemma).search(["notes"], "zq062ular", 3, mode="hybrid")
    assert result.mode == "bm25" and any("no vectors from" in n for n in result.notes)
