"""The engine's results as OpenAI response objects: completions, chunks, usage, logprobs.

Finish reasons: end of generation and stop strings are ``stop``; the token limit and a full
context are ``length``; a reply parsed into tool calls is ``tool_calls``. Usage counts the
prompt's tokens and every generated token (the end-of-generation token included, as
llama-server counts), summed over the choices.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import numpy as np

from core.engine.api import ErrorEvent, TokenLogprob
from server.errors import APIError
from server.execution import CANCELLED, ChoiceResult
from server.schemas import EmbeddingRequest
from server.tools import ParsedCall, ToolMode, parse_generic, parse_native

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length",
          "cancelled": "stop"}
FINGERPRINT = "hearth-llama.cpp"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def error_of(event: ErrorEvent, retry_after_s: float = 1.0) -> APIError:
    """An engine error as the API error a client should see."""
    kind = event.kind
    if kind == "QueueFullError":
        given = float(getattr(event, "retry_after_s", 0.0) or 0.0)
        return APIError(429, event.message, code="queue_full",
                        retry_after_s=given if given > 0 else retry_after_s)
    if kind == "PromptTooLongError":
        return APIError(400, event.message, code="context_length_exceeded", param="messages")
    if kind in ("ConfigError", "TemplateError"):
        return APIError(400, event.message, code="invalid_request")
    if kind == "GrammarError":  # the request's schema or grammar reached a dead end
        return APIError(400, event.message, code="grammar_dead_end", param="response_format")
    if kind in ("ContextFullError", CANCELLED):
        return APIError(503, event.message, code="engine_busy", retry_after_s=retry_after_s)
    return APIError(500, event.message, code="engine_error")


def usage_of(results: list[ChoiceResult], n: int | None = None) -> dict[str, Any]:
    """Usage over all choices; ``n`` choices share each prompt (counted once, as OpenAI
    does for ``n``), so prompts are results 0, n, 2n..."""
    step = n or len(results) or 1
    prompt = sum(r.metrics.prompt_tokens for r in results[::step] if r.metrics)
    completion = sum(r.metrics.decode_tokens for r in results if r.metrics)
    cached = max((r.metrics.cached_tokens for r in results if r.metrics), default=0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def finish_of(result: ChoiceResult) -> str:
    return FINISH.get(result.done.finish_reason, "stop") if result.done else "stop"


def _top(entries: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in entries]


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {"content": [{"token": i.token, "logprob": i.logprob,
                         "bytes": i.bytes or list(i.token.encode("utf-8")),
                         "top_logprobs": _top(i.top)} for i in items], "refusal": None}


def completion_logprobs(items: list[TokenLogprob], start: int = 0) -> dict[str, Any]:
    offsets, pos = [], start
    for item in items:
        offsets.append(pos)
        pos += len(item.token)
    return {"tokens": [i.token for i in items], "token_logprobs": [i.logprob for i in items],
            "top_logprobs": [dict(i.top) for i in items], "text_offset": offsets}


def tool_reply(result: ChoiceResult, mode: ToolMode | None) -> tuple[str | None,
                                                                    list[ParsedCall]]:
    if mode is None:
        return result.text, []
    return (parse_generic if mode == "generic" else parse_native)(result.text)


def chat_message(result: ChoiceResult, mode: ToolMode | None) -> tuple[dict[str, Any], str]:
    content, calls = tool_reply(result, mode)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = [c.to_openai() for c in calls]
        return message, "tool_calls"
    return message, finish_of(result)


def chat_completion(results: list[ChoiceResult], model: str, mode: ToolMode | None,
                    want_logprobs: bool) -> dict[str, Any]:
    choices = []
    for r in results:
        message, finish = chat_message(r, mode)
        choices.append({"index": r.index, "message": message, "finish_reason": finish,
                        "logprobs": chat_logprobs(r.logprobs) if want_logprobs else None})
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": FINGERPRINT, "choices": choices,
            "usage": usage_of(results)}


def completion(results: list[ChoiceResult], model: str, echo: list[str],
               want_logprobs: bool, n: int = 1) -> dict[str, Any]:
    choices = []
    for r in results:
        prefix = echo[r.index] if echo else ""
        choices.append({"index": r.index, "text": prefix + r.text, "finish_reason": finish_of(r),
                        "logprobs": completion_logprobs(r.logprobs, len(prefix))
                        if want_logprobs else None})
    return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()),
            "model": model, "system_fingerprint": FINGERPRINT, "choices": choices,
            "usage": usage_of(results, n)}


def chat_chunk(cid: str, created: int, model: str, choices: list[dict[str, Any]],
               usage: dict[str, Any] | None = None, with_usage: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                             "model": model, "system_fingerprint": FINGERPRINT,
                             "choices": choices}
    if with_usage:
        chunk["usage"] = usage
    return chunk


def completion_chunk(cid: str, created: int, model: str, choices: list[dict[str, Any]],
                     usage: dict[str, Any] | None = None,
                     with_usage: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created,
                             "model": model, "system_fingerprint": FINGERPRINT,
                             "choices": choices}
    if with_usage:
        chunk["usage"] = usage
    return chunk


def embedding_response(vectors: np.ndarray, body: EmbeddingRequest, model: str,
                       prompt_tokens: int) -> dict[str, Any]:
    """``prompt_tokens``: the tokens embedded (:class:`server.token_count.TokenCounter`)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if body.dimensions is not None:
        if body.dimensions > vectors.shape[1]:
            raise APIError(400, f"This model's embeddings have {vectors.shape[1]} dimensions; "
                           f"{body.dimensions} were asked.", code="invalid_request",
                           param="dimensions")
        vectors = vectors[:, : body.dimensions]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    data = []
    for i, row in enumerate(vectors):
        value: Any = row.tolist() if body.encoding_format == "float" else \
            base64.b64encode(row.astype("<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
