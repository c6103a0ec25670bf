"""The Batch API as the ``openai`` client calls it: ``/v1/files`` and ``/v1/batches``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from server.batch_lines import parse_input
from server.errors import APIError
from server.schemas import BatchCreateRequest

router = APIRouter(tags=["batch"])
PURPOSES = ("batch", "batch_output", "assistants", "fine-tune", "vision", "user_data", "evals")


def _srv(request: Request) -> Any:
    return request.app.state.hearth


@router.post("/v1/files")
async def upload_file(request: Request, file: UploadFile = File(...),  # noqa: B008
                      purpose: str = Form(...)) -> Any:
    if purpose not in PURPOSES:
        raise APIError(400, f"Unknown purpose '{purpose}'; this server takes 'batch' files.",
                       code="invalid_purpose", param="purpose")
    data = await file.read()
    if purpose == "batch":
        _, errors = parse_input(data, "")  # endpoint checked when a batch uses it
        syntax = [e for e in errors if e["code"] in ("invalid_json_line", "invalid_file")]
        if syntax:
            raise APIError(400, f"The file is not JSONL: {syntax[0]['message']}",
                           code="invalid_file", param="file")
    return _srv(request).store.add_file(data, file.filename or "upload.jsonl", purpose)


@router.get("/v1/files")
async def list_files(request: Request) -> Any:
    return {"object": "list", "data": _srv(request).store.files(), "has_more": False}


def _file(request: Request, file_id: str) -> dict[str, Any]:
    found = _srv(request).store.file(file_id)
    if found is None:
        raise APIError(404, f"No file with id '{file_id}'.", code="file_not_found",
                       param="file_id")
    return found


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request) -> Any:
    return _file(request, file_id)


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> Response:
    _file(request, file_id)
    data = _srv(request).store.file_bytes(file_id) or b""
    return Response(data, media_type="application/jsonl")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request) -> Any:
    _file(request, file_id)
    _srv(request).store.delete_file(file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.post("/v1/batches")
async def create_batch(body: BatchCreateRequest, request: Request) -> Any:
    srv = _srv(request)
    meta = _file(request, body.input_file_id)
    if meta["purpose"] != "batch":
        raise APIError(400, f"File '{body.input_file_id}' was uploaded with purpose "
                       f"'{meta['purpose']}', not 'batch'.", code="invalid_input_file",
                       param="input_file_id")
    if body.metadata and (len(body.metadata) > 16 or any(
            len(k) > 64 or len(v) > 512 for k, v in body.metadata.items())):
        raise APIError(400, "metadata takes at most 16 pairs (keys ≤ 64, values ≤ 512 "
                       "characters).", code="invalid_metadata", param="metadata")
    lines, errors = parse_input(srv.store.file_bytes(body.input_file_id) or b"", body.endpoint)
    batch_id = srv.store.create_batch(body.input_file_id, body.endpoint,
                                      body.completion_window, body.metadata, lines, errors)
    srv.batches.wake()
    return srv.store.batch(batch_id)


@router.get("/v1/batches")
async def list_batches(request: Request, limit: int = 20, after: str | None = None) -> Any:
    limit = max(1, min(limit, 100))
    data = _srv(request).store.batches(limit + 1, after)
    return {"object": "list", "data": data[:limit], "has_more": len(data) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[:limit][-1]["id"] if data else None}


def _batch(request: Request, batch_id: str) -> dict[str, Any]:
    found = _srv(request).store.batch(batch_id)
    if found is None:
        raise APIError(404, f"No batch with id '{batch_id}'.", code="batch_not_found",
                       param="batch_id")
    return found


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request) -> Any:
    return _batch(request, batch_id)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request) -> Any:
    batch = _batch(request, batch_id)
    if batch["status"] in ("completed", "failed", "cancelled", "expired"):
        raise APIError(409, f"Batch '{batch_id}' is already {batch['status']}.",
                       code="batch_not_cancellable")
    _srv(request).batches.cancel(batch_id)
    return _batch(request, batch_id)
