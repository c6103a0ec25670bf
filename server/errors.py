"""Errors as OpenAI error objects: ``{"error": {"message", "type", "param", "code"}}``.

Every failure leaves the server through :func:`install_handlers`: a bad body is a 400 that
names the field, an unknown route a 404, a full queue a 429 with ``Retry-After``, and any
exception nobody expected a 500 with one sentence and no traceback (the traceback goes to
the log). The ``openai`` client turns these into its typed exceptions.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("hearth.server")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "invalid_request_error",
          413: "invalid_request_error", 415: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}


class APIError(Exception):
    """An error the client should see as it is (status, message, param, code)."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.code, self.param)

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def error_body(status: int, message: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"),
                      "param": param, "code": code}}


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """One sentence for the first problem, naming the field as OpenAI does (``param``)."""
    problems = err.errors()
    if not problems:
        return "The request body is not valid.", None
    first = problems[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if param is None:
        return f"The request body is not valid: {msg}.", None
    more = f" ({len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"Invalid value for '{param}': {msg}{more}.", param


def install_handlers(app: FastAPI) -> None:
    """Route every exception to an OpenAI error object."""

    @app.exception_handler(APIError)
    async def api_error(_request: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(err)
        return APIError(400, message, code="invalid_request", param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        messages = {404: "No such endpoint or object.", 405: "Method not allowed here."}
        message = err.detail if isinstance(err.detail, str) and err.status_code not in messages \
            else messages.get(err.status_code, str(err.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return JSONResponse(error_body(err.status_code, message, code),
                            status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "The server failed unexpectedly; the reason is in "
                                       "Hearth's log.", "internal_error"), status_code=500)
