"""A question about documents to the prompt the model sees: retrieve, fill the budget in
rank order, render the template, account for every token.

The documents block never exceeds the budget (default 600 tokens, the seed's), counted with
the chat model's own tokenizer on the block exactly as it is sent; a whole document goes in
when it fits, else its chunks, in rank order, each numbered ``[n]`` with its file, page and
lines. What did not fit is listed (open-webui #13870 and #4501 overflowed the context with no
cap; gpt4all #2865's fixed top-k could not answer "list all": here the budget, not a count,
decides). Retrieved text goes in the last user turn, so the system prompt and earlier turns
stay a stable prefix the KV cache reuses from turn to turn. Answers copy from the context,
so the prompt asks for prompt-lookup speculation (``draft = "lookup"``).

:func:`build_document_prompt` is the one entry point: the GUI, ``hearth-cli generate
--docs`` and the API server's collections extension all call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.chat.documents.chunking import join_chunks
from core.chat.documents.embedding import DocumentEmbedder
from core.chat.documents.retrieval import Hit, Mode, Retriever, SearchResult
from core.chat.documents.sources import Citations, Source, display_names, resolve_citations
from core.chat.documents.store import DocumentStore
from core.chat.documents.template import DEFAULT_SYSTEM, SEED_TEMPLATE, check_template, render
from core.chat.documents.tokens import Tokenizer, prompt_tokens
from core.engine import ChatMessage, GenerationRequest, SamplingParams

DEFAULT_BUDGET = 600
DEFAULT_CANDIDATES = 50
SPECULATION = "lookup"  # EngineConfig.draft for document answers (2.1x measured here)


@dataclass(frozen=True)
class LeftOut:
    """A retrieved passage that did not fit the budget."""

    path: str
    page: int | None
    lines: tuple[int, int]
    tokens: int


@dataclass
class Breakdown:
    """Tokens of each part of the prompt (counted with the model's tokenizer), shown to the
    user before sending. ``prompt_total`` is the exact prompt through the chat template
    (turn markers included) when the tokenizer is a model's."""

    system: int
    documents: int
    history: int
    question: int  # the template around the documents, with the question
    budget: int
    left_out: list[LeftOut] = field(default_factory=list)
    history_dropped: int = 0  # oldest turns left out to fit the context
    prompt_total: int | None = None

    @property
    def left_out_tokens(self) -> int:
        return sum(x.tokens for x in self.left_out)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["left_out_tokens"] = self.left_out_tokens
        return data

    def text(self) -> str:
        parts = [f"system {self.system}", f"documents {self.documents}/{self.budget}",
                 f"history {self.history}", f"question {self.question}"]
        if self.left_out:
            parts.append(f"left out {len(self.left_out)} passages "
                         f"({self.left_out_tokens} tokens)")
        if self.history_dropped:
            parts.append(f"{self.history_dropped} oldest turns dropped")
        if self.prompt_total is not None:
            parts.append(f"prompt {self.prompt_total} tokens")
        return "Tokens: " + " · ".join(parts)


@dataclass
class DocumentPrompt:
    """What to send and what it holds. ``draft`` is the speculation to run the answer with
    (``EngineConfig.draft``); None when the caller turned it off."""

    messages: list[ChatMessage]
    sources: list[Source]
    breakdown: Breakdown
    search: SearchResult
    documents: str
    draft: str | None = SPECULATION

    def request(self, sampling: SamplingParams | None = None, max_tokens: int = 512,
                **fields: Any) -> GenerationRequest:
        return GenerationRequest(messages=list(self.messages),
                                 sampling=sampling or SamplingParams(), max_tokens=max_tokens,
                                 **fields)

    def cite(self, reply: str) -> Citations:
        return resolve_citations(reply, self.sources)

    def to_json(self, reply: str | None = None) -> dict[str, Any]:
        """What a front end returns beside the answer (the API server's ``hearth``
        extension): the passages sent, which ``[n]`` the reply cited, the breakdown."""
        data: dict[str, Any] = {"sources": [s.to_json() for s in self.sources],
                                "breakdown": self.breakdown.to_dict(),
                                "retrieval": self.search.mode, "notes": self.search.notes}
        if reply is not None:
            cited = self.cite(reply)
            data["cited"] = [s.n for s in cited.cited]
            data["unknown_citations"] = cited.unknown
        return data


class _Packer:
    """Fills the documents block in rank order under the budget, counting exactly."""

    def __init__(self, store: DocumentStore, tokenizer: Tokenizer, budget: int) -> None:
        self.store, self.tokenizer, self.budget = store, tokenizer, budget
        self.sources: list[Source] = []
        self.entries: list[str] = []
        self.used = 0
        self.covered: set[int] = set()
        self.whole_tried: set[int] = set()
        self.left_out: list[LeftOut] = []

    def _entry(self, source: Source, name: str) -> str:
        return f"[{source.n}] {source.label(name)}\n{source.text.strip()}"

    def _try(self, source: Source) -> bool:
        name = display_names([*self.sources, source])[source.n]
        entry = self._entry(source, name)
        alone = self.tokenizer.count(entry)
        if self.used + alone > self.budget + 8:  # cannot fit whatever the joins do
            return False
        block = "\n\n".join([*self.entries, entry])
        total = self.tokenizer.count(block)
        if total > self.budget:
            return False
        self.entries.append(entry)
        self.sources.append(source)
        self.used = total
        self.covered.update(source.chunk_ids)
        return True

    def _whole(self, hit: Hit, n: int) -> Source | None:
        c = hit.chunk
        if c.file_id in self.whole_tried:
            return None
        self.whole_tried.add(c.file_id)
        if self.store.file_tokens(c.file_id) > self.budget - self.used:
            return None
        chunks = self.store.file_chunks(c.file_id)
        text = join_chunks([(x.page, x.char_start, x.char_end, x.text) for x in chunks])
        pages = [x.page for x in chunks if x.page is not None]
        return Source(n, c.path, None, (1, max(x.line_end for x in chunks)), text,
                      tuple(x.id for x in chunks), c.collection, hit.score, "document",
                      (min(pages), max(pages)) if pages else None)

    def add(self, hit: Hit) -> None:
        c = hit.chunk
        if c.id in self.covered:
            return
        n = len(self.sources) + 1
        whole = self._whole(hit, n)
        if whole is not None and self._try(whole):
            return
        chunk = Source(n, c.path, c.page, (c.line_start, c.line_end), c.text, (c.id,),
                       c.collection, hit.score)
        if not self._try(chunk):
            self.left_out.append(LeftOut(c.path, c.page, (c.line_start, c.line_end),
                                         c.n_tokens))

    def cut_first(self, hit: Hit) -> None:
        """Nothing fitted (a budget smaller than one chunk): the best chunk, shortened."""
        c = hit.chunk
        keep = self.budget
        while keep > 0:
            source = Source(1, c.path, c.page, (c.line_start, c.line_end),
                            self.tokenizer.truncate(c.text, keep), (c.id,), c.collection,
                            hit.score, "cut")
            if source.text.strip() and self._try(source):
                self.left_out = [x for x in self.left_out
                                 if (x.path, x.page, x.lines) != (c.path, c.page,
                                                                   (c.line_start, c.line_end))]
                return
            keep -= max(4, keep // 8)


def _count_messages(tokenizer: Tokenizer, messages: list[ChatMessage]) -> int:
    return sum(tokenizer.count(m.content) for m in messages)


def build_document_prompt(
    collections: list[str], question: str, history: list[ChatMessage], budget: int,
    tokenizer: Tokenizer, *, store: DocumentStore | None = None,
    retriever: Retriever | None = None, embedder: DocumentEmbedder | None = None,
    system: str = DEFAULT_SYSTEM, template: str = SEED_TEMPLATE,
    candidates: int = DEFAULT_CANDIDATES, context_limit: int | None = None,
    mode: Mode = "auto", speculation: bool = True,
) -> DocumentPrompt:
    """The messages for ``question`` over ``collections`` after ``history`` (earlier
    turns; a leading system message is kept first), with the sources used.

    ``budget`` caps the documents block in tokens of ``tokenizer`` (the chat model's);
    ``context_limit`` (the context minus the reply's room) drops the oldest turns until the
    whole prompt fits. Raises :class:`DocumentsError` for an unknown collection or a
    template without its placeholders."""
    check_template(template)
    if budget < 1:
        raise ValueError("the documents budget must be at least 1 token")
    if retriever is None:
        retriever = Retriever(store or DocumentStore(), embedder)
    found = retriever.search(collections, question, top_k=candidates, candidates=candidates,
                             mode=mode)
    packer = _Packer(retriever.store, tokenizer, budget)
    for hit in found.hits:
        packer.add(hit)
    if not packer.sources and found.hits:
        packer.cut_first(found.hits[0])
    documents = "\n\n".join(packer.entries)
    turns = [m for m in history if m.role in ("user", "assistant")]
    system_parts = [m.content for m in history[:1] if m.role == "system" and m.content.strip()]
    system_text = "\n\n".join([*system_parts, *([system] if system.strip() else [])])
    head = [ChatMessage("system", system_text)] if system_text else []
    user = ChatMessage("user", render(template, documents, question))
    dropped = 0
    messages = [*head, *turns, user]
    while context_limit is not None and turns:
        total = prompt_tokens(tokenizer, messages)
        if (total if total is not None else _count_messages(tokenizer, messages)) \
                <= context_limit:
            break
        cut = 2 if len(turns) > 1 and turns[0].role == "user" else 1
        turns, dropped = turns[cut:], dropped + cut
        messages = [*head, *turns, user]
    breakdown = Breakdown(
        system=tokenizer.count(system_text) if system_text else 0,
        documents=tokenizer.count(documents) if documents else 0,
        history=_count_messages(tokenizer, turns),
        question=tokenizer.count(render(template, "", question)),
        budget=budget, left_out=packer.left_out, history_dropped=dropped,
        prompt_total=prompt_tokens(tokenizer, messages))
    return DocumentPrompt(messages, packer.sources, breakdown, found, documents,
                          SPECULATION if speculation else None)


def source_names(prompt: DocumentPrompt) -> list[str]:
    """The files a prompt used, once each, in order (for a one-line summary)."""
    return list(dict.fromkeys(Path(s.path).name for s in prompt.sources))
