"""Keyword search: a question to FTS5 queries over the word index and the trigram index.

The question's words are OR-ed (BM25 ranks chunks that hold more and rarer ones first), each
quoted so that FTS5 syntax in a question ("NOT", "-", "*", quotes) is only text. Common
English words are dropped first, so a question whose content words appear nowhere matches
nothing and goes out with the template's "not found" instruction instead of the chunks that
happen to contain "the". Runs of Chinese, Japanese or Korean characters go to the trigram
index as their overlapping three-character pieces (those scripts have no spaces; a query of
one or two characters is matched as a substring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.chat.documents.store import DocumentStore

_CJK = (r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
        r"\u1100-\u11ff\u3130-\u318f\uff66-\uff9f")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
tell explain describe give show please
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class LexicalQuery:
    words: tuple[str, ...]
    cjk: tuple[str, ...]  # runs of CJK characters, in order

    @property
    def empty(self) -> bool:
        return not self.words and not self.cjk


def parse_query(text: str) -> LexicalQuery:
    cjk = tuple(_CJK_RUN.findall(text))
    rest = _CJK_RUN.sub(" ", text)
    words = [w.lower() for w in _WORD.findall(rest)]
    content = [w for w in words if w not in STOPWORDS] or words
    return LexicalQuery(tuple(dict.fromkeys(content)), cjk)


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _trigrams(run: str) -> list[str]:
    return [run[i:i + 3] for i in range(len(run) - 2)]


def _in(ids: list[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def _ranked(store: DocumentStore, table: str, collection_ids: list[int], match: str,
            limit: int) -> list[tuple[int, float]]:
    """Top chunks of one FTS table in the collections. The FTS query runs alone (joining
    every match to its file costs more than the ranking) and the few best are filtered by
    collection; when other collections crowd them out, it asks again for more, then joins."""
    wanted = set(collection_ids)
    for fetch in (limit * 2, limit * 16):
        rows = store.query(f"SELECT rowid, bm25({table}) AS s FROM {table} "
                           f"WHERE {table} MATCH ? ORDER BY s LIMIT ?", (match, fetch))
        if not rows:
            return []
        ids = [int(r[0]) for r in rows]
        owner = dict(store.query(
            f"SELECT c.id, f.collection_id FROM chunks c JOIN files f ON f.id = c.file_id "
            f"WHERE c.id IN ({_in(ids)})"))
        kept = [(int(i), -float(s)) for i, s in rows if owner.get(int(i)) in wanted]
        if len(kept) >= limit or len(rows) < fetch:
            return kept[:limit]
    rows = store.query(
        f"SELECT c.id, bm25({table}) AS s FROM {table} "
        f"JOIN chunks c ON c.id = {table}.rowid JOIN files f ON f.id = c.file_id "
        f"WHERE {table} MATCH ? AND f.collection_id IN ({_in(collection_ids)}) "
        "ORDER BY s LIMIT ?", (match, limit))
    return [(int(i), -float(s)) for i, s in rows]


def word_search(store: DocumentStore, collection_ids: list[int], query: LexicalQuery,
                limit: int) -> list[tuple[int, float]]:
    """Chunks ranked by BM25 over the word index: (chunk id, score; higher is better)."""
    if not query.words or not collection_ids:
        return []
    return _ranked(store, "chunks_fts", collection_ids, " OR ".join(map(_quote, query.words)),
                   limit)


def cjk_search(store: DocumentStore, collection_ids: list[int], query: LexicalQuery,
               limit: int) -> list[tuple[int, float]]:
    """Chunks ranked by BM25 over the trigram index for the query's CJK runs."""
    if not query.cjk or not collection_ids:
        return []
    grams = list(dict.fromkeys(g for run in query.cjk for g in _trigrams(run)))
    short = [run for run in query.cjk if len(run) < 3]
    found: dict[int, float] = {}
    if grams:
        found.update(_ranked(store, "chunks_tri", collection_ids,
                             " OR ".join(map(_quote, grams)), limit))
    for run in short:  # too short for a trigram: a substring scan (rare, small queries)
        rows = store.query(
            "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id "
            f"WHERE f.collection_id IN ({_in(collection_ids)}) AND instr(c.text, ?) > 0 "
            "LIMIT ?", (run, limit))
        for (i,) in rows:
            found[int(i)] = found.get(int(i), 0.0) + 1.0
    return sorted(found.items(), key=lambda kv: -kv[1])[:limit]
