"""What went wrong with a remote engine, in one sentence a user can act on.

HTTP statuses and transport failures become :class:`RemoteEngineError` subclasses (all
:class:`EngineError`, so every front end already shows them). Messages name the engine by
its address and quote the server's own message when it sent one (shortened, on one line);
they never contain the request's headers, so never a key.
"""

from __future__ import annotations

import json

import httpx

from core.errors import EngineError

MAX_SERVER_TEXT = 200


class RemoteEngineError(EngineError):
    """A remote engine failed or refused; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class EngineUnreachableError(RemoteEngineError):
    """No connection (refused, no route, DNS, TLS) or no answer within the timeout."""


class EngineAuthError(RemoteEngineError):
    """401/403: the key is missing or wrong."""


class EngineBusyError(RemoteEngineError):
    """429/503 that outlasted the retries (or asked for a longer wait than allowed)."""


class EngineRejectedError(RemoteEngineError):
    """Another 4xx: the request (model name, a parameter) is not acceptable there."""


class StreamDroppedError(RemoteEngineError):
    """The connection broke, or went silent past the read timeout, in the middle of a
    reply."""


def server_message(body: bytes | str) -> str:
    """The server's own explanation from an error body: OpenAI's ``{"error": {"message"}}``,
    llama-server's and vLLM's variants, Ollama's ``{"error": "..."}``, or the text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg")
        if isinstance(err, list) and err and isinstance(err[0], dict):  # FastAPI's 422
            err = err[0].get("msg")
        if err:
            text = str(err)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SERVER_TEXT else text[: MAX_SERVER_TEXT - 1] + "…"


def error_for_status(where: str, status: int, body: bytes | str = b"",
                     model: str | None = None) -> RemoteEngineError:
    """The error for an HTTP error answer from ``where`` (the engine's address)."""
    said = server_message(body)
    quoted = f": “{said}”" if said else ""
    if status in (401, 403):
        return EngineAuthError(
            f"The engine at {where} refused the API key ({status}{quoted}). Check the key "
            "in Settings › Engines (or HEARTH_ENGINE_KEY for hearth-cli).", status)
    if status == 404:
        what = f"model “{model}” or its API" if model else "OpenAI API"
        return EngineRejectedError(
            f"The engine at {where} has no such {what} (404{quoted}). Check the address "
            "ends in /v1 and the model name is one it lists.", status)
    if status in (429, 503):
        return EngineBusyError(f"The engine at {where} is busy ({status}{quoted}) and "
                               "stayed busy after the retries; try again later.", status)
    if 400 <= status < 500:
        return EngineRejectedError(
            f"The engine at {where} rejected the request ({status}{quoted}).", status)
    return RemoteEngineError(f"The engine at {where} failed ({status}{quoted}); its own log "
                             "says why.", status)


def error_for_exception(where: str, err: Exception, mid_stream: bool,
                        read_timeout_s: float | None = None) -> RemoteEngineError:
    """The error for a transport failure; ``mid_stream`` once reply text has arrived (the
    message then says the text so far is kept)."""
    kept = " The reply so far is kept." if mid_stream else ""
    if isinstance(err, httpx.ReadTimeout):
        wait = f"{read_timeout_s:g} s" if read_timeout_s else "the read timeout"
        cls = StreamDroppedError if mid_stream else EngineUnreachableError
        return cls(f"The engine at {where} sent nothing for {wait}; gave up.{kept}")
    if isinstance(err, httpx.TimeoutException):
        return EngineUnreachableError(f"The engine at {where} did not answer in time "
                                      f"({type(err).__name__}). Is it running and reachable?")
    if isinstance(err, httpx.ConnectError):
        reason = _reason(err)
        return EngineUnreachableError(f"Cannot reach the engine at {where} ({reason}). Check "
                                      "that it is running and the address is right.")
    if mid_stream or isinstance(err, httpx.RemoteProtocolError | httpx.ReadError):
        return StreamDroppedError(f"The connection to the engine at {where} dropped in the "
                                  f"middle of the reply ({_reason(err)}).{kept}")
    return RemoteEngineError(f"Talking to the engine at {where} failed ({_reason(err)}).")


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    for hint in ("Connection refused", "Name or service not known", "No route to host",
                 "timed out", "certificate verify failed"):
        if hint.lower() in text.lower():
            return hint.lower()
    return text[:MAX_SERVER_TEXT]
