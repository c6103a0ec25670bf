"""OpenAI request bodies → the engine's :class:`GenerationRequest`, one per choice.

Sampling: fields left out take llama.cpp's defaults (temperature 0.8, top-k 40, top-p 0.95,
as llama-server does), not OpenAI's (temperature 1), because the models served here are
tuned and judged with those. ``temperature: 0`` is greedy. Hearth's decoding presets apply
one truncation at a time, so the fields choose one: ``min_p`` alone → min-p, ``top_k``
alone → top-k, otherwise top-k then top-p. ``n`` > 1 runs n requests, choice i with seed
``seed + i`` (n copies of one seed would be n identical answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.engine.api import ChatMessage, GenerationRequest, Lane, LoadedModelInfo
from core.engine.sampling import DEFAULT_SEED, Preset, SamplingParams
from server.errors import APIError
from server.schemas import ChatCompletionRequest, CompletionRequest, Message, ResponseFormat
from server.tools import (
    ToolMode,
    chosen_tools,
    generic_instructions,
    generic_schema,
    tool_mode,
)


@dataclass
class Plan:
    """What to run for one API request: ``requests[i]`` is choice i. ``tools`` says how
    to read the replies (None: plain text); ``echo[i]`` is text to put before choice i."""

    requests: list[GenerationRequest]
    tools: ToolMode | None = None
    echo: list[str] = field(default_factory=list)


def sampling_of(body: ChatCompletionRequest | CompletionRequest, choice: int,
                grammar: str | None) -> SamplingParams:
    temperature = 0.8 if body.temperature is None else body.temperature
    preset: Preset = "top-p"
    if temperature == 0:
        preset = "greedy"
    elif body.min_p is not None and body.top_p is None and body.top_k is None:
        preset = "min-p"
    elif body.top_k is not None and body.top_p is None:
        preset = "top-k"
    seed = DEFAULT_SEED if body.seed is None else (body.seed + choice) & 0xFFFFFFFF
    return SamplingParams(
        preset=preset, temperature=temperature,
        top_k=40 if body.top_k is None else body.top_k,
        top_p=0.95 if body.top_p is None else body.top_p,
        min_p=0.05 if body.min_p is None else body.min_p,
        repeat_penalty=body.repeat_penalty or 1.0, seed=seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0, grammar=grammar)


def grammar_of(fmt: ResponseFormat | None) -> str | None:
    """The GBNF grammar for ``response_format`` (None for text)."""
    if fmt is None or fmt.type == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    if fmt.type == "json_object":
        return JSON_GBNF
    if fmt.json_schema is None:
        raise APIError(400, "response_format json_schema needs a 'json_schema' object with a "
                       "'schema'.", code="invalid_response_format", param="response_format")
    return schema_grammar(fmt.json_schema.schema_ or {"type": "object"},
                          "response_format.json_schema.schema")


def schema_grammar(schema: dict[str, Any], param: str) -> str:
    """A JSON schema as GBNF (llama-cpp-python's converter, the one llama.cpp ships)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as err:  # the converter raises many kinds for schemas it cannot take
        raise APIError(400, f"The JSON schema cannot be turned into a grammar: {err}.",
                       code="invalid_json_schema", param=param) from None


def max_tokens_of(requested: int | None, info: LoadedModelInfo, cap: int | None) -> int:
    """The reply's token limit. Left out, it is one sequence's share of the context (the
    engine admits a request when its prompt plus this limit fits beside the running ones,
    so a limit of the whole context would make every such request run alone)."""
    limit = cap if cap is not None else info.n_ctx
    if requested is None:
        return min(limit, max(16, info.n_ctx // max(1, info.n_seq_max)))
    if cap is not None and requested > cap:
        raise APIError(400, f"max_tokens is {requested}, but this server allows at most {cap}.",
                       code="max_tokens_too_large", param="max_tokens")
    return min(requested, info.n_ctx)


def _message(m: Message) -> ChatMessage:
    """One API message as an engine message (text only; tool turns as JSON text)."""
    if m.role == "assistant" and m.tool_calls:
        calls = [{"name": c.function.name, "arguments": _json_or_text(c.function.arguments)}
                 for c in m.tool_calls]
        return ChatMessage("assistant", json.dumps({"tool_calls": calls}, ensure_ascii=False))
    if m.role == "tool":
        result = {"tool_response": {"tool_call_id": m.tool_call_id, "content": m.text()}}
        return ChatMessage("tool", json.dumps(result, ensure_ascii=False))
    return ChatMessage("system" if m.role == "developer" else m.role, m.text())


def _json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def plan_chat(body: ChatCompletionRequest, info: LoadedModelInfo, lane: Lane,
              cap: int | None) -> Plan:
    messages = [_message(m) for m in body.messages]
    grammar = grammar_of(body.response_format)
    mode: ToolMode | None = None
    tools_arg: list[dict[str, Any]] | None = None
    if body.tools and body.tool_choice != "none":
        if grammar is not None:
            raise APIError(400, "Use either tools or a JSON response_format, not both.",
                           code="invalid_request", param="response_format")
        tools, required = chosen_tools(body.tools, body.tool_choice)
        mode = tool_mode(info)
        if mode == "native":
            tools_arg = [t.model_dump(exclude_none=True) for t in tools]
        else:
            schema = generic_schema(tools, required, body.parallel_tool_calls)
            grammar = schema_grammar(schema, "tools")
            note = ChatMessage("system", generic_instructions(tools, schema, required))
            if messages[0].role == "system":
                note = ChatMessage("system", f"{messages[0].content}\n\n{note.content}")
                messages = messages[1:]
            messages = [note, *messages]
    requested = body.max_completion_tokens if body.max_completion_tokens is not None \
        else body.max_tokens
    max_tokens = max_tokens_of(requested, info, cap)
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    requests = [GenerationRequest(messages=messages, sampling=sampling_of(body, i, grammar),
                                  max_tokens=max_tokens, stop=body.stop_list(),
                                  logprobs=logprobs, lane=lane, tools=tools_arg,
                                  ignore_eos=body.ignore_eos)
                for i in range(body.n)]
    return Plan(requests, mode)


def plan_completion(body: CompletionRequest, info: LoadedModelInfo, lane: Lane,
                    cap: int | None) -> Plan:
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts:
        raise APIError(400, "'prompt' is an empty list.", code="invalid_request", param="prompt")
    if len(prompts) * body.n > 32:
        raise APIError(400, "At most 32 choices per request (prompts × n).",
                       code="invalid_request", param="n")
    grammar = grammar_of(body.response_format)
    max_tokens = max_tokens_of(body.max_tokens if body.max_tokens is not None else 16, info, cap)
    requests, echo = [], []
    for prompt in prompts:
        for i in range(body.n):
            requests.append(GenerationRequest(
                prompt=prompt, sampling=sampling_of(body, i, grammar), max_tokens=max_tokens,
                stop=body.stop_list(), logprobs=body.logprobs, lane=lane,
                ignore_eos=body.ignore_eos))
            echo.append(prompt if body.echo else "")
    return Plan(requests, None, echo)
