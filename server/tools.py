"""Tool calls: through the model's own template when it has a tool format, otherwise a
generic JSON form that a grammar enforces (what llama.cpp's server calls "generic").

Generic form: the model is told the tools and the JSON shape in a system message, and the
sampler's grammar allows only ``{"tool_calls": [{"name": ..., "arguments": {...}}]}`` or
``{"response": "..."}`` (only the first for ``tool_choice: "required"`` or a named tool).
Any model can then call tools, even the bundled base model, and the output always parses.
Native form: the tools go to the template as ``tools``; the reply is parsed for the formats
templates use (Hermes/Qwen ``<tool_call>``, Mistral ``[TOOL_CALLS]``, Llama 3.1 bare JSON).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.engine.api import LoadedModelInfo
from core.engine.runtime.templates import template_supports_tools
from server.errors import APIError
from server.schemas import NamedToolChoice, Tool

ToolMode = Literal["generic", "native"]


@dataclass
class ParsedCall:
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def to_openai(self) -> dict[str, Any]:
        return {"id": f"call_{secrets.token_hex(12)}", "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


def tool_mode(info: LoadedModelInfo) -> ToolMode:
    """Native when the loaded GGUF's own template reads ``tools``; generic otherwise (a
    family template, a remote engine we cannot inspect, an unreadable file)."""
    if info.source != "local" or info.template != "gguf":
        return "generic"
    from core.gguf.reader import read_local

    try:
        source = read_local(Path(info.path)).chat_template
    except Exception:  # an unreadable header: the generic form works everywhere
        return "generic"
    return "native" if template_supports_tools(source) else "generic"


def chosen_tools(tools: list[Tool], choice: str | NamedToolChoice | None) -> tuple[list[Tool],
                                                                                  bool]:
    """The tools the model may call and whether it must call one."""
    if isinstance(choice, NamedToolChoice):
        named = [t for t in tools if t.function.name == choice.function.name]
        if not named:
            raise APIError(400, f"tool_choice names '{choice.function.name}', which is not "
                           "among the tools.", code="invalid_tool_choice", param="tool_choice")
        return named, True
    return tools, choice == "required"


def generic_schema(tools: list[Tool], required: bool, parallel: bool) -> dict[str, Any]:
    """The JSON schema of a generic reply (llama.cpp's generic tool-call format)."""
    calls = [{"type": "object",
              "properties": {"name": {"const": t.function.name},
                             "arguments": t.function.parameters or {"type": "object"}},
              "required": ["name", "arguments"]} for t in tools]
    item = calls[0] if len(calls) == 1 else {"anyOf": calls}
    array: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if not parallel:
        array["maxItems"] = 1
    with_calls = {"type": "object", "properties": {"tool_calls": array},
                  "required": ["tool_calls"]}
    if required:
        return with_calls
    reply = {"type": "object", "properties": {"response": {"type": "string"}},
             "required": ["response"]}
    return {"anyOf": [with_calls, reply]}


def generic_instructions(tools: list[Tool], schema: dict[str, Any], required: bool) -> str:
    """The system text that tells the model the tools and the answer's JSON shape."""
    listing = json.dumps([t.function.model_dump(exclude_none=True) for t in tools], indent=1)
    how = ("Call one or more of the tools." if required else
           "Either call tools (`tool_calls`) or answer the user directly (`response`).")
    return (f"You can call these tools:\n{listing}\n\n{how} Reply with JSON only, following "
            f"this schema:\n{json.dumps(schema)}")


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_generic(text: str) -> tuple[str | None, list[ParsedCall]]:
    """(content, calls) from a generic reply; text that is not the JSON form is content."""
    try:
        data = json.loads(text)
    except ValueError:
        return text, []
    if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
        calls = [ParsedCall(str(c.get("name", "")), _arguments(c.get("arguments", {})))
                 for c in data["tool_calls"] if isinstance(c, dict)]
        return None, calls
    if isinstance(data, dict) and isinstance(data.get("response"), str):
        return data["response"], []
    return text, []


_HERMES = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*(\[.*\])", re.S)


def _call_of(obj: Any) -> ParsedCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters"))
    if not isinstance(name, str) or args is None:
        return None
    return ParsedCall(name, _arguments(args))


def parse_native(text: str) -> tuple[str | None, list[ParsedCall]]:
    """(content, calls) from a reply in a template's own tool format."""
    found = _HERMES.findall(text)
    if found:
        calls = [c for c in (_call_of(_loads(f)) for f in found) if c is not None]
        rest = _HERMES.sub("", text).strip()
        return (rest or None), calls
    match = _MISTRAL.search(text)
    if match:
        items = _loads(match.group(1))
        calls = [c for c in (_call_of(i) for i in items or []) if c is not None]
        rest = text[: match.start()].strip()
        return (rest or None), calls
    stripped = text.replace("<|python_tag|>", "").strip()
    if stripped.startswith(("{", "[")):
        data = _loads(stripped)
        items = data if isinstance(data, list) else [data]
        if isinstance(data, dict) and "tool_calls" in data:
            return parse_generic(stripped)
        calls = [c for c in (_call_of(i) for i in items) if c is not None]
        if calls and len(calls) == len(items):
            return None, calls
    return text, []


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
