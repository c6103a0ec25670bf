"""One batch line, start to end: validate the input file, run a line as the endpoint would
(non-streaming, in the bulk lane), and write the output file in OpenAI's format."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from core.engine.api import EngineBackend
from server.admission import Admission
from server.errors import APIError
from server.execution import CancelFlag, ChoiceResult, run_admitted
from server.models import ModelRouter
from server.responses import chat_completion, completion, embedding_response, error_of
from server.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from server.token_count import TokenCounter
from server.translate import plan_chat, plan_completion

MAX_LINES = 50_000
RETRY = "retry"  # a line that must run again later (model loading, cancelled)


def parse_input(data: bytes, endpoint: str) -> tuple[list[tuple[str, dict[str, Any]]],
                                                    list[dict[str, Any]]]:
    """(custom_id, body) per line, and the errors that fail the whole batch (OpenAI's
    ``errors.data``: code, message, line)."""
    lines: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def bad(line: int, code: str, message: str) -> None:
        if len(errors) < 100:
            errors.append({"code": code, "message": message, "param": None, "line": line})

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], [{"code": "invalid_file", "message": "The input file is not UTF-8 text.",
                     "param": None, "line": None}]
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            bad(number, "invalid_json_line", f"Line {number} is not valid JSON.")
            continue
        if not isinstance(item, dict):
            bad(number, "invalid_json_line", f"Line {number} is not a JSON object.")
            continue
        cid, body = item.get("custom_id"), item.get("body")
        if not isinstance(cid, str) or not cid:
            bad(number, "missing_custom_id", f"Line {number} has no 'custom_id'.")
        elif cid in seen:
            bad(number, "duplicate_custom_id", f"Line {number} repeats custom_id '{cid}'.")
        elif item.get("url", endpoint) != endpoint:
            bad(number, "mismatched_endpoint", f"Line {number} is for {item.get('url')}, but "
                f"the batch is for {endpoint}.")
        elif str(item.get("method", "POST")).upper() != "POST":
            bad(number, "invalid_method", f"Line {number}: only POST is supported.")
        elif not isinstance(body, dict):
            bad(number, "invalid_body", f"Line {number} has no JSON object 'body'.")
        else:
            seen.add(cid)
            lines.append((cid, body))
    if not lines and not errors:
        bad(0, "empty_file", "The input file has no requests.")
    if len(lines) > MAX_LINES:
        bad(0, "too_many_requests", f"A batch holds at most {MAX_LINES} requests.")
    return lines, errors


class LineExecutor:
    """Runs a line's body through the same planning and response code as the HTTP routes,
    with every choice in the bulk lane. Returns (status, body), or ``RETRY`` when the line
    could not run now (no model yet, cancelled) and must stay pending."""

    def __init__(self, router: ModelRouter, admission: Admission, cap: int | None,
                 tokens: TokenCounter | None = None) -> None:
        self.router, self.admission, self.cap = router, admission, cap
        self.tokens = tokens or TokenCounter()

    def run(self, endpoint: str, body: dict[str, Any], cancel: CancelFlag,
            on_start: Callable[[], None] | None = None) -> tuple[int, dict[str, Any]] | str:
        """``on_start`` is called when the line gets a slot (a started attempt)."""
        try:
            return self._run(endpoint, {**body, "stream": False}, cancel, on_start)
        except ValidationError as err:
            problems = err.errors()
            loc = problems[0]["loc"] if problems else ()
            param = ".".join(str(p) for p in loc) or None
            msg = problems[0]["msg"] if problems else "invalid"
            return 400, APIError(400, f"Invalid value for '{param}': {msg}.",
                                 code="invalid_request", param=param).body()
        except APIError as err:
            if err.status in (429, 503):
                return RETRY
            return err.status, err.body()

    def _run(self, endpoint: str, body: dict[str, Any], cancel: CancelFlag,
             on_start: Callable[[], None] | None) -> tuple[int, dict[str, Any]] | str:
        if endpoint == "/v1/embeddings":
            req = EmbeddingRequest.model_validate(body)
            backend, model, info = self.router.backend_for(req.model)
            embedded = self._embed(backend, req, model, info.path, cancel, on_start)
            return RETRY if embedded is None else (200, embedded)
        chat = endpoint == "/v1/chat/completions"
        parsed = (ChatCompletionRequest if chat else CompletionRequest).model_validate(body)
        backend, model, info = self.router.backend_for(parsed.model)
        plan = plan_chat(parsed, info, "bulk", self.cap) if isinstance(
            parsed, ChatCompletionRequest) else plan_completion(parsed, info, "bulk", self.cap)
        results = []
        for index, request in enumerate(plan.requests):
            result = ChoiceResult(index)
            ticket = self.admission.enter("bulk")
            run_admitted(backend, self.admission, ticket, request, cancel, result.add,
                         on_start if index == 0 else None)
            cancelled = result.done is None or result.done.finish_reason == "cancelled"
            if cancel.is_set() and cancelled:
                return RETRY  # stopped half-way: the line stays pending
            if result.error is not None:
                err = error_of(result.error, self.admission.retry_after_s())
                return RETRY if err.status in (429, 503) else (err.status, err.body())
            results.append(result)
        if isinstance(parsed, ChatCompletionRequest):
            return 200, chat_completion(results, model, plan.tools, parsed.logprobs)
        return 200, completion(results, model, plan.echo, parsed.logprobs is not None,
                               parsed.n)

    def _embed(self, backend: EngineBackend, req: EmbeddingRequest, model: str, path: str,
               cancel: CancelFlag,
               on_start: Callable[[], None] | None) -> dict[str, Any] | None:
        embed_fn = getattr(backend, "embed", None)
        if embed_fn is None:
            raise APIError(400, "This model's engine does not compute embeddings.",
                           code="embeddings_not_supported", param="model")
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        ticket = self.admission.enter("bulk")
        try:
            if not self.admission.wait(ticket, cancel):
                return None
            if on_start is not None:
                on_start()
            vectors = embed_fn(texts)
        finally:
            self.admission.release(ticket)
        return embedding_response(vectors, req, model,
                                  self.tokens.embedding_inputs(path, texts) or 0)


def output_lines(rows: list[Any], succeeded: bool | None) -> bytes:
    """The output (``succeeded``) or error file (not ``succeeded``), or both in input order
    (None): one OpenAI batch result per line."""
    out = []
    for row in rows:
        if succeeded is not None and (row["status"] == "done") != succeeded:
            continue
        out.append(json.dumps({
            "id": f"batch_req_{row['request_id'] or row['line_no']}",
            "custom_id": row["custom_id"],
            "response": {"status_code": row["status_code"], "request_id": row["request_id"],
                         "body": json.loads(row["response"])},
            "error": None}, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode() if out else b""
