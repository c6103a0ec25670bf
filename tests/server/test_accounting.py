"""What a client that leaves mid-stream still leaves behind: its request-log line (written
once the engine has ended the request, so it says "cancelled" and counts the tokens) and
its tokens in ``hearth_completion_tokens_total``."""

from __future__ import annotations

import logging
import re
import time

import httpx
import pytest

from server.request_log import LogEntry
from tests.server.conftest import Running
from tests.server.test_load import open_stream

CHUNKS = 4


def _completion_tokens_total(api: Running) -> int:
    text = httpx.get(f"{api.root}/metrics").text
    found = re.search(r"^hearth_completion_tokens_total (\d+)$", text, re.M)
    assert found, text
    return int(found.group(1))


def _leave_mid_stream(api: Running) -> LogEntry:
    """Read a long stream's first text chunks, hang up, and return its log entry once the
    request log has written it."""
    ended: list[LogEntry] = []

    def listener(entry: LogEntry) -> None:
        if entry.path == "/v1/completions" and not entry.in_flight:
            ended.append(entry)

    api.srv.log.subscribe(listener)
    try:
        client, _lines, _gap = open_stream(api, chunks=CHUNKS)
        client.close()
        deadline = time.monotonic() + 15
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        api.srv.log.unsubscribe(listener)
    assert ended, "the request never got its log line"
    return ended[0]


def test_the_log_line_of_a_client_that_left_says_cancelled_with_its_tokens(
        api: Running, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hearth.server"):
        entry = _leave_mid_stream(api)
        # What the listener (the app's live log) and the log file saw when it was written:
        line, finish, tokens = entry.line(), entry.finish, entry.completion_tokens
    assert finish == "cancelled", line
    assert CHUNKS <= tokens < 400, line
    assert entry.prompt_tokens > 0 or tokens, line
    assert f"→{tokens} tok" in line and line.endswith("cancelled")
    written = [r.getMessage() for r in caplog.records if "/v1/completions" in r.getMessage()]
    assert written and written[-1].endswith(f"→{tokens} tok cancelled)"), written


def test_a_cancelled_requests_tokens_reach_the_completion_counter(api: Running) -> None:
    before = _completion_tokens_total(api)
    entry = _leave_mid_stream(api)
    counted = _completion_tokens_total(api) - before
    print(f"\nleft after {CHUNKS} chunks: {entry.completion_tokens} tokens logged, "
          f"{counted} counted")
    assert counted >= CHUNKS
    assert counted == entry.completion_tokens
