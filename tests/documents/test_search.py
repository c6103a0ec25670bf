"""Search: CJK found through the trigram index, question syntax never breaks FTS5, rank
fusion as specified, collections kept apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.chat.documents import DocumentStore, IndexReport, Retriever
from core.chat.documents.lexical import parse_query
from core.chat.documents.retrieval import RRF_K, fuse
from core.chat.documents.tokens import ModelTokenizer
from core.chat.documents.vectors import VectorIndex
from tests.documents.corpus import Fact


@pytest.mark.parametrize(("query", "name"), [
    ("你好世界再见", None),  # no three characters in a row that any file has
    ("量子计算机研究所在哪里？", "quantum.txt"),
    ("東京タワーの高さは何メートルですか", "tower.md"),
    ("富士山", "tower.md"),  # a 3-character word inside a sentence without spaces
    ("杭州", "quantum.txt"),  # 2 characters: below a trigram, found as a substring
])
def test_a_cjk_query_finds_its_document(query: str, name: str | None,
                                        indexed: tuple[DocumentStore, IndexReport]) -> None:
    hits = Retriever(indexed[0]).search(["corpus"], query, 3).hits
    if name is None:
        assert hits == []
        return
    assert hits and Path(hits[0].chunk.path).name == name


def test_unicode61_alone_would_miss_cjk(indexed: tuple[DocumentStore, IndexReport]) -> None:
    """Why the trigram index exists: the word index sees a CJK sentence as one token."""
    store = indexed[0]
    assert store.query("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH '\"富士山\"'"
                       )[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM chunks_tri WHERE chunks_tri MATCH '\"富士山\"'"
                       )[0][0] == 1


@pytest.mark.parametrize("query", ['NOT "AND" * (', "zq017ular OR", "a-b:c^d", '"', "NEAR(x y)",
                                   "   ", "the of and"])
def test_question_syntax_never_breaks_the_query(query: str,
                                                indexed: tuple[DocumentStore, IndexReport]
                                                ) -> None:
    result = Retriever(indexed[0]).search(["corpus"], query, 3)
    assert result.mode == "bm25"
    if "zq017ular" in query:
        assert result.hits and "zq017ular" in result.hits[0].chunk.text


def test_stopwords_alone_do_not_match_every_chunk() -> None:
    assert parse_query("What is the airspeed of a swallow?").words == ("airspeed", "swallow")
    assert parse_query("the of and").words == ("the", "of", "and")  # nothing else to go on
    assert parse_query("東京タワー and Kyoto").cjk == ("東京タワー",)


def test_reciprocal_rank_fusion_with_k_60() -> None:
    scores = fuse([[1, 2, 3], [3, 1]])
    assert RRF_K == 60
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert sorted(scores, key=lambda i: -scores[i]) == [1, 3, 2]


def test_collections_are_searched_apart(tmp_path: Path, corpus: tuple[Path, list[Fact]],
                                        doc_tokenizer: ModelTokenizer) -> None:
    from core.chat.documents import Indexer

    with DocumentStore(tmp_path / "s.sqlite3") as store:
        for name, sub in (("a", "txt"), ("b", "md")):
            store.add_roots(store.create_collection(name), [corpus[0] / sub])
            Indexer(store, doc_tokenizer).index(name)
        md_fact = next(f for f in corpus[1] if f.path.suffix == ".md")
        retriever = Retriever(store)
        assert retriever.search(["a"], md_fact.code, 3).hits == []
        assert retriever.search(["a", "b"], md_fact.code, 3).hits[0].chunk.collection == "b"
        store.remove_collection("b")
        assert store.query("SELECT COUNT(*) FROM chunks_fts")[0][0] == \
            store.query("SELECT COUNT(*) FROM chunks")[0][0]


def test_vector_scores_are_cosine_best_first(indexed: tuple[DocumentStore, IndexReport],
                                             tmp_path: Path) -> None:
    """The numpy scorer on stored BLOBs (vectors here are made up: the engine's embedder is
    tested in test_embeddings)."""
    store = DocumentStore(tmp_path / "v.sqlite3")
    collection = store.create_collection("v")
    from core.chat.documents.chunking import Chunk

    rng = np.random.default_rng(0)
    store.replace_file(collection, "/x.txt", 1, 1, "h",
                       [Chunk(f"c{i}", None, i + 1, i + 1, 0, 2, 1) for i in range(20)])
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [r[0] for r in store.query("SELECT id FROM chunks ORDER BY ord")]
    with store.transaction() as db:
        db.executemany("UPDATE chunks SET vector = ? WHERE id = ?",
                       [(v.tobytes(), i) for v, i in zip(vectors, ids, strict=True)])
        store.bump(db, collection.id)
    index = VectorIndex(store)
    found = index.search(collection.id, vectors[7], 5)
    assert found[0][0] == ids[7] and found[0][1] == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(vectors @ vectors[7]))[:5]
    assert [i for i, _ in found] == [ids[j] for j in expected]
    store.close()


def test_a_crowded_out_collection_still_finds_its_match(tmp_path: Path,
                                                        doc_tokenizer: ModelTokenizer) -> None:
    from core.chat.documents import Indexer

    with DocumentStore(tmp_path / "s.sqlite3") as store:
        for name, count, text in (("loud", 20, "heron heron heron heron"),
                                  ("quiet", 1, "a long note that names a heron once " * 5)):
            folder = tmp_path / name
            folder.mkdir()
            for i in range(count):
                (folder / f"{i}.txt").write_text(text)
            store.add_roots(store.create_collection(name), [folder])
            Indexer(store, doc_tokenizer).index(name)
        hits = Retriever(store).search(["quiet"], "heron", top_k=1, candidates=1).hits
        assert [h.chunk.collection for h in hits] == ["quiet"]
