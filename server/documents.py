"""Hearth's documents extension to chat completions: answer from local collections.

A request opts in with a ``hearth`` object beside OpenAI's fields (the ``openai`` client
sends it with ``extra_body={"hearth": {...}}``)::

    "hearth": {"collections": ["manuals"], "budget": 600, "mode": "auto"}

``collections`` are names from ``hearth-cli docs list`` (Hearth's documents store);
``budget`` caps the documents block in the chat model's tokens (default 600, the seed's);
``mode`` is ``auto`` (BM25, plus vectors when the collection has an embedding model's),
``bm25``, ``dense`` or ``hybrid``. The last message must be the user's question: it is
answered with the same prompt the app and ``hearth-cli generate --docs`` build
(:func:`~core.chat.documents.build_document_prompt`: the seed's template, the budget filled
in rank order, ``[n]`` markers, earlier turns kept while they fit the context).

The reply carries ``hearth`` too: ``sources`` (each ``[n]`` sent: file, page, lines, the
exact text), ``cited`` (the numbers the answer used; per choice under ``choices`` when
``n`` > 1), ``unknown_citations``, the token ``breakdown``, ``retrieval`` (what ranked) and
``notes``. A stream sends it in one chunk with empty ``choices`` just before ``[DONE]``.
Requests without ``hearth`` are untouched.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from core.chat.documents import DocumentPrompt, DocumentsError, DocumentStore
from core.chat.documents import build_document_prompt as build_prompt
from core.chat.documents.embedders import open_embedder, path_of, worker_embedder
from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.tokens import ModelTokenizer
from core.engine.api import ChatMessage, LoadedModelInfo
from core.engine.process.client import EngineClient
from server.errors import APIError
from server.execution import ChoiceResult
from server.schemas import ChatCompletionRequest, Message
from server.streaming import DONE, sse
from server.translate import max_tokens_of

log = logging.getLogger("hearth.server")
FIELD = "hearth"


class DocumentsOptions(BaseModel):
    """The ``hearth`` object of a chat-completions request."""

    collections: list[str] = Field(min_length=1, max_length=32)
    budget: int = Field(default=600, ge=1, le=32_768)
    mode: Literal["auto", "bm25", "dense", "hybrid"] = "auto"


@dataclass
class Prepared:
    """A request rewritten to answer from documents, and what it was given."""

    body: ChatCompletionRequest
    prompt: DocumentPrompt

    def extension(self, results: list[ChoiceResult]) -> dict[str, Any]:
        data = self.prompt.to_json(results[0].text if results else None)
        if len(results) > 1:
            data["choices"] = []
            for r in results:
                cited = self.prompt.cite(r.text)
                data["choices"].append({"index": r.index, "cited": [s.n for s in cited.cited],
                                        "unknown_citations": cited.unknown})
        return data


class Documents:
    """What the extension keeps between requests: the store, the chat models' tokenizers
    (the vocabulary loads in about half a second), the embedders of collections."""

    def __init__(self, store: DocumentStore | None = None) -> None:
        self._store = store
        self._tokenizers: dict[str, ModelTokenizer] = {}
        self._embedders: dict[str, DocumentEmbedder] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> DocumentStore:
        with self._lock:
            if self._store is None:
                self._store = DocumentStore()  # Hearth's own, as the app and CLI use
            return self._store

    def tokenizer(self, info: LoadedModelInfo) -> ModelTokenizer:
        """The served model's tokenizer; a remote model's file is not here, so the bundled
        model's counts (close for budgets, and the note says so)."""
        path = Path(info.path)
        if not path.is_file():
            from core.models.bundled import default_model_path

            path = default_model_path()
        with self._lock:
            if str(path) not in self._tokenizers:
                self._tokenizers[str(path)] = ModelTokenizer.open(path)
            return self._tokenizers[str(path)]

    def embedder(self, backend: Any, names: list[str]) -> DocumentEmbedder | None:
        """The embedding model the first collection recorded, computed in the engine's
        worker when the backend is one (a crash there spares the server), else here."""
        identity = next((c.embed_model for c in map(self.store.collection, names)
                         if c.embed_model), None)
        path = path_of(identity) if identity else None
        if path is None:
            return None  # the Retriever's notes say keyword search only
        if isinstance(backend, EngineClient):
            return worker_embedder(backend, path)
        with self._lock:
            if identity not in self._embedders:
                self._embedders[str(identity)] = open_embedder(path)
            return self._embedders[str(identity)]


def documents_of(app_state: Any) -> Documents:
    found = getattr(app_state, "documents", None)
    if found is None:
        found = app_state.documents = Documents()
    return found


def options_of(body: ChatCompletionRequest) -> DocumentsOptions | None:
    raw = (body.model_extra or {}).get(FIELD)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise APIError(400, "'hearth' must be an object such as {\"collections\": [\"notes\"]}.",
                       code="invalid_request", param=FIELD)
    try:
        return DocumentsOptions.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise APIError(400, f"hearth.{where}: {first['msg']}.", code="invalid_request",
                       param=f"{FIELD}.{where}") from None


def _history(body: ChatCompletionRequest) -> tuple[list[ChatMessage], str]:
    *earlier, last = body.messages
    if last.role != "user" or not last.text().strip():
        raise APIError(400, "With 'hearth.collections' the last message must be the user's "
                       "question.", code="invalid_request", param="messages")
    if any(m.role == "tool" or m.tool_calls for m in earlier):
        raise APIError(400, "Tool turns cannot be combined with 'hearth.collections' yet; "
                       "send the documents question in its own conversation.",
                       code="invalid_request", param="messages")
    roles = {"developer": "system"}
    return [ChatMessage(roles.get(m.role, m.role), m.text())  # type: ignore[arg-type]
            for m in earlier], last.text()


async def prepare(state: Any, body: ChatCompletionRequest, info: LoadedModelInfo,
                  backend: Any, cap: int | None) -> Prepared | None:
    """The request with its last user turn answered from the collections, or None when it
    carries no ``hearth`` object. Unknown collections are a 400 naming them."""
    options = options_of(body)
    if options is None:
        return None
    history, question = _history(body)
    requested = body.max_completion_tokens if body.max_completion_tokens is not None \
        else body.max_tokens
    room = info.n_ctx - max_tokens_of(requested, info, cap)
    docs = documents_of(state)

    def build() -> DocumentPrompt:
        for name in options.collections:
            docs.store.collection(name)  # an unknown name: DocumentsError naming the known
        return build_prompt(options.collections, question, history, options.budget,
                            docs.tokenizer(info), store=docs.store,
                            embedder=docs.embedder(backend, options.collections),
                            context_limit=room if room > 0 else None, mode=options.mode)

    try:
        prompt = await asyncio.to_thread(build)
    except DocumentsError as err:
        unknown = "no collection named" in str(err)
        raise APIError(404 if unknown else 400, str(err),
                       code="collection_not_found" if unknown else "invalid_request",
                       param=f"{FIELD}.collections") from None
    log.info("server: documents answer from %s, %d passages (%s)",
             ", ".join(options.collections), len(prompt.sources), prompt.search.mode)
    messages = [Message(role=m.role, content=m.content)
                for m in prompt.messages]
    return Prepared(body.model_copy(update={"messages": messages}), prompt)


async def with_sources(stream: AsyncIterator[str], prepared: Prepared,
                       results: list[ChoiceResult], model: str) -> AsyncIterator[str]:
    """A chat stream with the ``hearth`` chunk before ``[DONE]`` (the replies are whole
    by then, so their citations are resolved)."""
    try:
        async for part in stream:
            if part == DONE:
                yield sse({"id": "hearth-sources", "object": "chat.completion.chunk",
                           "created": int(time.time()), "model": model, "choices": [],
                           FIELD: prepared.extension(results)})
            yield part
    finally:  # a client that left: the inner stream's own finally cancels the engine's work
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
