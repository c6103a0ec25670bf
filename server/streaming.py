"""Server-sent events for streamed chat and text completions.

One ``data: {chunk}`` per piece of text; each choice opens with a role chunk and closes with
a chunk carrying its ``finish_reason``; with ``stream_options.include_usage`` every chunk has
``"usage": null`` and a last chunk with empty ``choices`` carries the usage; then
``data: [DONE]``. An engine error after the stream began is ``data: {"error": {...}}``
(what the ``openai`` client raises from). Replies that are tool calls are sent whole when
they end (partial JSON is no use to a client). If the client goes away, Starlette cancels
this generator and its ``finally`` cancels the engine's work.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from core.engine.api import DoneEvent, ErrorEvent, Event, TextEvent
from server.execution import Run
from server.responses import (
    chat_chunk,
    chat_logprobs,
    completion_chunk,
    completion_logprobs,
    error_of,
    finish_of,
    new_id,
    tool_reply,
    usage_of,
)
from server.tools import ToolMode

DONE = "data: [DONE]\n\n"


def sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _events(run: Run, first: tuple[int, Event]) -> AsyncIterator[tuple[int, Event]]:
    yield first
    while not run.finished:
        yield await run.next()


async def chat_stream(run: Run, first: tuple[int, Event], model: str, mode: ToolMode | None,
                      include_usage: bool, want_logprobs: bool) -> AsyncIterator[str]:
    cid, created = new_id("chatcmpl"), int(time.time())

    def chunk(choices: list[dict[str, Any]]) -> str:
        return sse(chat_chunk(cid, created, model, choices, None, include_usage))

    try:
        for i in range(len(run.results)):
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                          "logprobs": None, "finish_reason": None}])
        async for index, event in _events(run, first):
            if isinstance(event, TextEvent) and mode is None and (event.text or event.logprobs):
                logprobs = chat_logprobs(event.logprobs) if want_logprobs and event.logprobs \
                    else None
                yield chunk([{"index": index, "delta": {"content": event.text},
                              "logprobs": logprobs, "finish_reason": None}])
            elif isinstance(event, DoneEvent):
                result = run.results[index]
                finish = finish_of(result)
                if mode is not None:
                    content, calls = tool_reply(result, mode)
                    delta: dict[str, Any] = {"content": content}
                    if calls:
                        finish = "tool_calls"
                        delta["tool_calls"] = [{"index": k, **c.to_openai()}
                                               for k, c in enumerate(calls)]
                    yield chunk([{"index": index, "delta": delta, "logprobs": None,
                                  "finish_reason": None}])
                yield chunk([{"index": index, "delta": {}, "logprobs": None,
                              "finish_reason": finish}])
            elif isinstance(event, ErrorEvent):
                yield sse({"error": error_of(event).body()["error"]})
                yield DONE
                return
        await run.settled()
        if include_usage:
            yield sse(chat_chunk(cid, created, model, [], usage_of(run.results), True))
        yield DONE
    finally:
        run.cancel()  # nothing left to stop when it ended; the engine's work when it did not


async def completion_stream(run: Run, first: tuple[int, Event], model: str, echo: list[str],
                            n: int, include_usage: bool,
                            want_logprobs: bool) -> AsyncIterator[str]:
    cid, created = new_id("cmpl"), int(time.time())

    def chunk(choices: list[dict[str, Any]]) -> str:
        return sse(completion_chunk(cid, created, model, choices, None, include_usage))

    try:
        for i, prefix in enumerate(echo):
            if prefix:
                yield chunk([{"index": i, "text": prefix, "logprobs": None,
                              "finish_reason": None}])
        async for index, event in _events(run, first):
            if isinstance(event, TextEvent) and (event.text or event.logprobs):
                logprobs = completion_logprobs(event.logprobs) if want_logprobs and \
                    event.logprobs else None
                yield chunk([{"index": index, "text": event.text, "logprobs": logprobs,
                              "finish_reason": None}])
            elif isinstance(event, DoneEvent):
                yield chunk([{"index": index, "text": "", "logprobs": None,
                              "finish_reason": finish_of(run.results[index])}])
            elif isinstance(event, ErrorEvent):
                yield sse({"error": error_of(event).body()["error"]})
                yield DONE
                return
        await run.settled()
        if include_usage:
            yield sse(completion_chunk(cid, created, model, [], usage_of(run.results, n), True))
        yield DONE
    finally:
        run.cancel()
