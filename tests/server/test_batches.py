"""The Batch API end to end through the official client: upload, create, poll, a server
restart in the middle (finished lines are not redone), output and error files, cancel."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest

from tests.server.conftest import Running, StartServer

N_LINES = 6


def _jsonl(lines: list[dict]) -> bytes:
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def _chat_line(i: int, model: str, max_tokens: int = 12) -> dict:
    return {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "temperature": 0, "max_tokens": max_tokens,
                     "messages": [{"role": "user", "content": f"Tell me about the number {i}."}]}}


def _wait(client: openai.OpenAI, batch_id: str, until: tuple[str, ...],
          timeout: float = 300) -> openai.types.Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until or time.monotonic() > deadline:
            return batch
        time.sleep(0.1)


def test_a_batch_survives_a_server_restart(start_server: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "batch-data"
    first = start_server(data_dir=data)
    client = first.client()
    lines = [_chat_line(i, first.model) for i in range(N_LINES)]
    lines.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": first.model, "messages": []}})  # fails alone
    upload = client.files.create(file=("in.jsonl", _jsonl(lines)), purpose="batch")
    assert upload.purpose == "batch" and upload.bytes > 0
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"job": "restart"})
    assert batch.status == "in_progress" and batch.metadata == {"job": "restart"}
    deadline = time.monotonic() + 300
    while client.batches.retrieve(batch.id).request_counts.completed < 2:  # type: ignore
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done_before = {r["line_no"] for r in first.srv.store.results(batch.id)
                   if r["status"] == "done"}
    first.stop()  # mid-batch: in-flight lines are cancelled and stay pending

    second = start_server(data_dir=data)
    client = second.client()
    final = _wait(client, batch.id, ("completed", "failed", "cancelled"))
    assert final.status == "completed", final
    assert final.request_counts.total == N_LINES + 1  # type: ignore[union-attr]
    assert final.request_counts.completed == N_LINES  # type: ignore[union-attr]
    assert final.request_counts.failed == 1  # type: ignore[union-attr]
    attempts = second.srv.store.attempts(batch.id)
    assert all(attempts[n] == 1 for n in done_before), attempts  # nothing finished redone
    assert sum(attempts.values()) <= N_LINES + 1 + second.srv.admission.slots + 1
    out = [json.loads(x) for x in client.files.content(final.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == [f"req-{i}" for i in range(N_LINES)]
    for o in out:
        body = o["response"]["body"]
        assert o["response"]["status_code"] == 200
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] <= 12
    errors = client.files.content(final.error_file_id).text.splitlines()
    bad = json.loads(errors[0])
    assert bad["custom_id"] == "bad" and bad["response"]["status_code"] == 400
    assert bad["response"]["body"]["error"]["param"] == "messages"
    assert final.usage is not None and final.usage.output_tokens > 0


def test_a_batch_answers_like_the_endpoint(api: Running) -> None:
    client = api.client()
    body = {"model": api.model, "prompt": "The capital of France is", "max_tokens": 6,
            "temperature": 0}
    direct = client.completions.create(**body).choices[0].text
    upload = client.files.create(file=("c.jsonl", _jsonl([
        {"custom_id": "c", "method": "POST", "url": "/v1/completions", "body": body}])),
        purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/completions",
                                  completion_window="24h")
    final = _wait(client, batch.id, ("completed", "failed"))
    out = json.loads(client.files.content(final.output_file_id).text)
    assert out["response"]["body"]["choices"][0]["text"] == direct
    listed = client.batches.list()
    assert batch.id in [b.id for b in listed.data]


def test_a_cancelled_batch_keeps_what_was_answered(api: Running) -> None:
    client = api.client()
    lines = [_chat_line(i, api.model, max_tokens=400) for i in range(4)]
    upload = client.files.create(file=("long.jsonl", _jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    final = _wait(client, batch.id, ("cancelled",), timeout=60)
    assert final.status == "cancelled" and final.cancelled_at
    assert final.request_counts.completed < 4  # type: ignore[union-attr]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_an_invalid_input_file_fails_the_batch_with_line_errors(api: Running) -> None:
    client = api.client()
    upload = client.files.create(file=("mixed.jsonl", _jsonl([
        _chat_line(0, api.model),
        {"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {}}])),
        purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert batch.status == "failed"
    assert batch.errors and batch.errors.data[0].code == "mismatched_endpoint"
    assert batch.errors.data[0].line == 2
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("junk.jsonl", b"not json\n"), purpose="batch")
