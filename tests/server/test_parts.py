"""The server's parts that need no model: tool-call formats, the tools variable reaching a
template, and admission (lanes, the slot bulk work leaves free, the bounded queue)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.engine.runtime.templates import ChatTemplate, template_supports_tools
from server.admission import Admission, QueueFull
from server.tools import parse_generic, parse_native

HERMES_TEMPLATE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t['function']['name'] }};{% endfor %}"
    "</tools>{% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
    "{% endfor %}")


def test_a_template_that_reads_tools_gets_them() -> None:
    assert template_supports_tools(HERMES_TEMPLATE)
    assert not template_supports_tools("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    template = ChatTemplate("gguf", HERMES_TEMPLATE)
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    text = template.render([{"role": "user", "content": "hi"}], "", "", tools=tools)
    assert text.startswith("<tools>get_weather;</tools>user: hi")
    assert template.render([{"role": "user", "content": "hi"}], "", "") == "user: hi\n"


@pytest.mark.parametrize("reply", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}',
])
def test_native_tool_formats_parse(reply: str) -> None:
    content, calls = parse_native(reply)
    assert content is None
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})]


def test_plain_replies_stay_content() -> None:
    assert parse_native("Paris is sunny.") == ("Paris is sunny.", [])
    assert parse_generic('{"response": "Hello!"}') == ("Hello!", [])
    assert parse_generic("not json") == ("not json", [])


def test_interactive_requests_go_before_bulk_and_bulk_leaves_a_slot() -> None:
    gate = Admission(slots=2, max_queue=4)
    never = threading.Event()
    bulk = [gate.enter("bulk") for _ in range(3)]
    assert gate.wait(bulk[0], never)  # one bulk runs; the second slot stays for chat
    started: list[str] = []

    def run(ticket, name: str) -> None:
        if gate.wait(ticket, never):
            started.append(name)

    threads = [threading.Thread(target=run, args=(t, f"bulk{i}"))
               for i, t in enumerate(bulk[1:], 1)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert started == [] and gate.running == 1
    chat = gate.enter("interactive")
    assert gate.wait(chat, never)  # the free slot goes to interactive work at once
    gate.release(bulk[0])
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started == ["bulk1"]  # in order, one at a time beside the chat
    gate.release(chat)
    for ticket in bulk[1:]:
        gate.release(ticket)
    for t in threads:
        t.join(5)
    assert gate.running == 0 and gate.waiting == 0


def test_a_full_queue_refuses_at_once_and_a_cancelled_waiter_leaves() -> None:
    gate = Admission(slots=1, max_queue=1)
    never, cancel = threading.Event(), threading.Event()
    first = gate.enter("interactive")
    assert gate.wait(first, never)
    second = gate.enter("interactive")
    with pytest.raises(QueueFull) as full:
        gate.enter("interactive")
    assert full.value.retry_after_s >= 1
    cancel.set()
    assert not gate.wait(second, cancel)  # its client went away: out of the queue
    assert gate.waiting == 0
    gate.enter("interactive")  # room again
