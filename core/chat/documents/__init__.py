"""Chat with your documents: collections indexed in one SQLite file, searched by BM25
(words and CJK trigrams) and stored vectors merged by reciprocal rank fusion, and the
seed's RAG template filled under a token budget, with ``[n]`` citations.

Reading order: ``readers`` (files to text) › ``chunking`` (token chunks with page and line
spans) › ``store``/``schema`` (SQLite, FTS5) › ``indexer`` (incremental, kill-safe) ›
``lexical``/``vectors``/``retrieval`` (search, RRF) › ``template``/``prompt``/``sources``
(what the model sees and what it cites) › ``watch`` (folders kept up to date).
"""

from core.chat.documents.errors import DocumentsError, ReadError
from core.chat.documents.indexer import Indexer, IndexProgress, IndexReport
from core.chat.documents.prompt import (
    DEFAULT_BUDGET,
    Breakdown,
    DocumentPrompt,
    build_document_prompt,
)
from core.chat.documents.retrieval import Hit, Retriever, SearchResult
from core.chat.documents.sources import Citations, Source, resolve_citations
from core.chat.documents.store import DocumentStore
from core.chat.documents.template import SEED_TEMPLATE

__all__ = [
    "DEFAULT_BUDGET",
    "SEED_TEMPLATE",
    "Breakdown",
    "Citations",
    "DocumentPrompt",
    "DocumentStore",
    "DocumentsError",
    "Hit",
    "IndexProgress",
    "IndexReport",
    "Indexer",
    "ReadError",
    "Retriever",
    "SearchResult",
    "Source",
    "build_document_prompt",
    "resolve_citations",
]
