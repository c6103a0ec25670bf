"""Defaults that let no one in, checked over real HTTP: Host and Origin, API keys, the body
limit, OpenAI-shaped errors for every bad input (never a 500 or a traceback), and a data
folder that only its owner can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import openai
import pytest

from core.chat.history import HistoryStore
from core.errors import ConfigError
from core.paths import hearth_home
from server import ServerConfig
from tests.server.conftest import Running, StartServer


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


def test_a_foreign_host_header_is_refused(api: Running) -> None:
    r = httpx.get(f"{api.url}/models", headers={"Host": "attacker.example:8642"})
    assert r.status_code == 403
    assert _error(r)["code"] == "host_not_allowed"
    assert httpx.get(f"{api.url}/models", headers={"Host": "localhost"}).status_code == 200


def test_a_foreign_origin_is_refused_and_cors_is_off(api: Running) -> None:
    body = {"model": api.model, "prompt": "Hi", "max_tokens": 1}
    r = httpx.post(f"{api.url}/completions", json=body,
                   headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert _error(r)["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    pre = httpx.options(f"{api.url}/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_a_listed_origin_gets_cors(start_server: StartServer) -> None:
    running = start_server(cors_origins=["https://app.example"])
    pre = httpx.options(f"{running.url}/models", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert pre.headers.get("access-control-allow-origin") == "https://app.example"
    other = httpx.get(f"{running.url}/models", headers={"Origin": "https://evil.example"})
    assert other.status_code == 403


def test_a_non_loopback_host_needs_an_api_key() -> None:
    with pytest.raises(ConfigError, match="API key"):
        ServerConfig(host="0.0.0.0").check()
    ServerConfig(host="0.0.0.0", api_key="k").check()
    ServerConfig(host="::1").check()


def test_the_api_key_is_required_when_set(start_server: StartServer) -> None:
    running = start_server(api_key="s3cret")
    assert httpx.get(f"{running.root}/health").status_code == 200  # open for probes
    r = httpx.get(f"{running.url}/models")
    assert r.status_code == 401 and _error(r)["code"] == "invalid_api_key"
    wrong = openai.OpenAI(base_url=running.url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert running.client().models.list().data[0].id == running.model


def test_a_body_over_the_limit_is_refused(start_server: StartServer) -> None:
    running = start_server(max_body_bytes=4096)
    big = {"model": running.model, "prompt": "x" * 5000}
    r = httpx.post(f"{running.url}/completions", json=big)
    assert r.status_code == 413 and _error(r)["code"] == "body_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    r = httpx.post(f"{running.url}/completions", content=chunks(),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/chat/completions", b"{not json", 400, None),
    ("/chat/completions", {"messages": []}, 400, "messages"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                           "temperature": 9}, 400, "temperature"),
    ("/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400,
     "messages.0.role"),
    ("/completions", {"prompt": "x", "model": "gpt-4o"}, 404, "model"),
    ("/completions", {"prompt": "x", "response_format": {
        "type": "json_schema", "json_schema": {"schema": {"type": "nonsense"}}}}, 400, None),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                           "tools": [{"type": "function", "function": {"name": "f"}}],
                           "tool_choice": {"type": "function", "function": {"name": "g"}}},
     400, "tool_choice"),
    ("/batches", {"input_file_id": "file_missing", "endpoint": "/v1/chat/completions"},
     404, "file_id"),
    ("/no/such/route", {}, 404, None),
])
def test_bad_input_is_a_4xx_openai_error(api: Running, path: str, body: object, status: int,
                                         param: str | None) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{api.url}{path}", headers={"Content-Type": "application/json"},
                   **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    error = _error(r)
    assert error["message"].endswith("."), error
    if param is not None:
        assert error["param"] == param


def test_a_prompt_longer_than_the_context_is_a_400(api: Running) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        api.client().completions.create(model=api.model, prompt="word " * 5000, max_tokens=1)
    assert caught.value.code == "context_length_exceeded"


def test_health_and_metrics(api: Running) -> None:
    health = httpx.get(f"{api.root}/health").json()
    assert health["status"] == "ok" and health["model"] == api.model
    api.client().completions.create(model=api.model, prompt="Hi", max_tokens=2)
    text = httpx.get(f"{api.root}/metrics").text
    for series in ("hearth_requests_total{", "hearth_prompt_tokens_total ",
                   "hearth_completion_tokens_total ", "hearth_queue_depth ",
                   "hearth_busy_sequences ", "hearth_ttft_seconds_bucket{",
                   "hearth_decode_tokens_per_second_count "):
        assert series in text, series
    assert 'endpoint="/v1/completions",status="200"' in text
    assert httpx.get(f"{api.root}/openapi.json").json()["paths"]["/v1/chat/completions"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_is_owner_only(isolated_home: Path, start_server: StartServer) -> None:
    isolated_home.mkdir(parents=True)
    isolated_home.chmod(0o755)  # as an older Hearth left it
    home = hearth_home()
    assert _mode(home) == 0o700
    with HistoryStore() as history:
        history.create_chat("secret")
        assert _mode(history.path) == 0o600
        for extra in home.glob("history.sqlite3-*"):
            assert _mode(extra) & 0o077 == 0, extra
    running = start_server(data_dir=home / "server")
    file = running.client().files.create(file=("in.jsonl", b'{"custom_id": "a"}\n'),
                                         purpose="batch")
    assert _mode(home / "server") == 0o700
    assert _mode(running.srv.store.files_dir / f"{file.id}.bin") == 0o600
    assert _mode(home / "server" / "batches.sqlite3") == 0o600
    assert os.stat(home).st_uid == os.getuid()
