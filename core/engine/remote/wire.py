"""Hearth's request as an OpenAI request body, and the server's stream chunks as pieces.

The body asks for exactly the decoding Hearth's preset means. Servers that run llama.cpp's
samplers (llama-server) otherwise apply their own defaults (top-k 40, top-p 0.95, min-p
0.05) on top of what was asked, so the fields a preset leaves out are sent switched off.
``top_k``, ``min_p``, ``repeat_penalty``/``repetition_penalty``, ``ignore_eos``,
``grammar`` and ``cache_prompt`` are extensions that llama-server and vLLM read and that
Ollama's OpenAI layer ignores; they are sent only when they change something.

Stream chunks (SSE ``data:`` lines) become :class:`Piece`: text, a finish reason, the usage
(``stream_options.include_usage``), llama-server's own ``timings``, or an error object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.engine.api import FinishReason, GenerationRequest, TokenLogprob
from core.engine.sampling import DEFAULT_SEED, SamplingParams


def sampling_fields(s: SamplingParams) -> dict[str, Any]:
    """The body fields for one of Hearth's presets."""
    out: dict[str, Any] = {}
    if s.is_greedy:
        out["temperature"] = 0.0
    else:
        out["temperature"] = s.temperature
        if s.preset == "top-k":
            out.update(top_k=s.top_k, top_p=1.0, min_p=0.0)
        elif s.preset == "top-p":
            out.update(top_k=s.top_k, top_p=s.top_p, min_p=0.0)
        else:  # min-p
            out.update(top_k=-1, top_p=1.0, min_p=s.min_p)  # -1: off in vLLM and llama.cpp
    if s.seed != DEFAULT_SEED:
        out["seed"] = s.seed
    if s.presence_penalty:
        out["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        out["frequency_penalty"] = s.frequency_penalty
    if s.repeat_penalty != 1.0:
        out.update(repeat_penalty=s.repeat_penalty, repetition_penalty=s.repeat_penalty,
                   repeat_last_n=s.repeat_last_n)
    if s.grammar is not None:
        out["grammar"] = s.grammar
    return out


def request_body(request: GenerationRequest, model: str) -> tuple[str, dict[str, Any]]:
    """(path, body) for ``request``: chat messages go to ``/chat/completions``, a prompt (or
    prompt tokens) to ``/completions``; always streamed, with the usage at the end."""
    body: dict[str, Any] = {"model": model, "stream": True,
                            "stream_options": {"include_usage": True},
                            "max_tokens": request.max_tokens,
                            **sampling_fields(request.sampling)}
    if request.stop:
        body["stop"] = list(request.stop)
    if request.ignore_eos:
        body["ignore_eos"] = True
    if not request.reuse_cache:
        body["cache_prompt"] = False
    if request.messages is not None:
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.tools:
            body["tools"] = request.tools
        if request.logprobs is not None:
            body.update(logprobs=True, top_logprobs=request.logprobs)
        return "/chat/completions", body
    body["prompt"] = request.prompt if request.prompt is not None else request.prompt_tokens
    if request.logprobs is not None:
        body["logprobs"] = request.logprobs
    return "/completions", body


@dataclass
class Piece:
    """What one stream chunk carried."""

    text: str = ""
    finish: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    logprobs: list[TokenLogprob] | None = None
    error: str | None = None


class SSEDecoder:
    """Server-sent events from lines: ``feed(line)`` -> the event's data once a blank line
    ends it (multi-line data joined with newlines, comments and other fields skipped)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        return None

    def flush(self) -> str | None:
        return self.feed("")


def parse_chunk(data: str) -> Piece | None:
    """One event's data as a Piece; None for ``[DONE]``."""
    if data.strip() == "[DONE]":
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return Piece(error=f"the server sent a chunk that is not JSON: {data[:80]!r}")
    if not isinstance(obj, dict):
        return Piece()
    if "error" in obj:
        err = obj["error"]
        return Piece(error=str(err.get("message", err) if isinstance(err, dict) else err))
    piece = Piece(usage=obj.get("usage") or None, timings=obj.get("timings") or None)
    choices = obj.get("choices") or []
    if choices and isinstance(choices[0], dict):
        choice = choices[0]
        delta = choice.get("delta", choice.get("message"))  # message: a non-streamed reply
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        piece.text = text or ""
        piece.finish = choice.get("finish_reason")
        piece.logprobs = _logprobs(choice.get("logprobs"))
    return piece


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    """Chat's ``logprobs.content`` list, or the legacy completions arrays."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("content"), list):
        return [TokenLogprob(str(t.get("token", "")), float(t.get("logprob", 0.0)),
                             [(str(a.get("token", "")), float(a.get("logprob", 0.0)))
                              for a in t.get("top_logprobs") or []],
                             list(t.get("bytes") or []))
                for t in raw["content"] if isinstance(t, dict)]
    tokens, lps = raw.get("tokens"), raw.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(lps, list):
        tops = raw.get("top_logprobs") or [None] * len(tokens)
        return [TokenLogprob(str(tok), float(lp or 0.0),
                             sorted(((str(k), float(v)) for k, v in (top or {}).items()),
                                    key=lambda kv: -kv[1]))
                for tok, lp, top in zip(tokens, lps, tops, strict=False)]
    return None


def finish_reason(raw: str | None, request: GenerationRequest) -> FinishReason:
    """OpenAI's reason in Hearth's terms. OpenAI says "stop" for both the end of the text
    and a stop string; with stop strings in the request Hearth cannot tell which, and says
    "stop" (the reply ended on purpose either way)."""
    if raw == "length":
        return "length"
    if raw == "stop" and request.stop:
        return "stop"
    return "eos"
