"""Uploads: keep the bytes and queue them for scoring; status and Verdict; appeals; erasure."""

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, Json, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from detector.frontend.scan import Scan
from serve.deps import AnyCaller, Admin, ServiceDep, Submitter, UploadId, found
from serve.files import TooLarge
from serve.retention import erase
from serve.schemas import Appeal, Erased, ReviewItem, UploadStatus, documented, error_response
from serve.service import Service
from serve.store.public import iso, public_item, public_upload
from serve.webhooks import Refused, address

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])
MEDIA_STATUS = {"unsupported": 415, "too_large": 413, "cancelled": 503}  # by the probe's reason; any other: 422
MULTIPART_SLACK = 64 * 1024  # form boundaries and fields around the file
MAX_METADATA, MAX_URL = 10_000, 2048  # characters, from the query or the form alike
_URL = TypeAdapter(AnyHttpUrl)
_METADATA = TypeAdapter(Json[dict[str, Any]])  # its parser refuses JSON nested over 200 levels deep
BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "metadata": {"type": "string"},
        "callback_url": {"type": "string"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("", status_code=202, response_model=UploadStatus, openapi_extra=BODY,
             responses={200: {"model": UploadStatus}, **documented(408, 409, 413, 415, 429)})
async def create_upload(request: Request, service: ServiceDep, caller: Submitter,
                        wait: Annotated[float, Query(ge=0, description="seconds to wait for the Verdict")] = 0,
                        callback_url: Annotated[str | None, Query(max_length=MAX_URL)] = None,
                        metadata: Annotated[str | None, Query(max_length=MAX_METADATA, description="JSON object")] = None,
                        idempotency_key: Annotated[str | None, Header(max_length=255)] = None):
    """Keep an upload (multipart `file` or the raw body) and queue it for scoring: 202 with its id,
    or 200 with the Verdict when `wait` seconds were enough."""
    cfg, files, store = service.cfg, service.files, service.store
    limit = cfg.limits.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        return error_response(413, "too_large", f"uploads are limited to {limit} bytes")
    if await run_in_threadpool(store.uploads.count, "queued") >= cfg.max_queued:
        return error_response(429, "busy", "the scoring queue is full; retry later", {"Retry-After": "5"})
    ctype = request.headers.get("content-type", "")
    try:
        tmp, sha, size = await asyncio.wait_for(files.receive(request.stream(), limit + MULTIPART_SLACK),
                                                cfg.upload_timeout_s)
    except TooLarge:
        return error_response(413, "too_large", f"uploads are limited to {limit} bytes")
    except TimeoutError:
        return error_response(408, "timeout", f"the upload took longer than {cfg.upload_timeout_s:g} s to arrive")
    try:
        if ctype.startswith("multipart/form-data"):
            form = await _parse_form(request, tmp)
            part = form.get("file")
            if part is None or isinstance(part, str):
                return error_response(422, "invalid_request", "multipart uploads need a `file` part")
            file_tmp, sha, size = await files.receive(_chunks(part), limit + 1)
            tmp.unlink()
            tmp, filename = file_tmp, part.filename
            metadata = form.get("metadata") or metadata
            callback_url = form.get("callback_url") or callback_url
        else:
            filename = None
        if size > limit:
            return error_response(413, "too_large", f"uploads are limited to {limit} bytes")
        if size == 0:
            return error_response(422, "empty", "the upload has no bytes")
        meta = _metadata(metadata)
        url = await run_in_threadpool(_callback, callback_url, cfg.webhooks.allow_hosts)
        checked = await _probe(service, tmp)
        if checked.error:
            reason = checked.error["reason"]
            return error_response(MEDIA_STATUS.get(reason, 422), reason, checked.error["message"].replace(str(tmp), "upload"))
        info = checked.info

        def keep_and_record():
            with files.lock(sha):  # retention cannot erase these bytes in between
                fresh = not files.path(sha).exists()
                files.keep(tmp, sha)
                try:
                    return store.uploads.add(sha, size, info.media_type, _safe_name(filename), meta, url,
                                             idempotency_key, caller.name)
                except Exception:  # no row will ever point at bytes stored just now
                    if fresh:
                        files.erase(sha)
                    raise

        up, created = await run_in_threadpool(keep_and_record)
    except (TooLarge, MultiPartException) as e:
        return error_response(413 if isinstance(e, TooLarge) else 422, "invalid_upload", str(e))
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if created:
        service.engine.wake()
    if wait:
        await service.engine.wait(up["id"], min(wait, cfg.max_wait_s))
        up = await run_in_threadpool(store.uploads.get, up["id"])
        if up["status"] in ("scored", "failed"):
            return JSONResponse(public_upload(up), status_code=200)
    return JSONResponse(public_upload(up), status_code=202)


@router.get("/{upload_id}", response_model=UploadStatus, responses=documented(404))
def get_upload(upload_id: UploadId, service: ServiceDep, caller: AnyCaller):
    """An upload's status (queued, processing, scored, failed with its reason) and Verdict; `submit`
    keys see only their own uploads."""
    up = service.store.uploads.get(upload_id)
    if up is None or not (caller.roles & {"review", "admin"} or up["client"] == caller.name):
        raise HTTPException(404, "no such upload")  # the same answer whether or not the id exists
    return public_upload(up)


@router.post("/{upload_id}/appeal", status_code=201, response_model=ReviewItem, responses=documented(404, 409))
def appeal(upload_id: UploadId, body: Appeal, service: ServiceDep, caller: Submitter):
    """The uploader contests the decision: the upload returns to review as an appeal, for another reviewer."""
    up = service.store.uploads.get(upload_id)
    if up is None or (up["client"] != caller.name and "admin" not in caller.roles):
        raise HTTPException(404, "no such upload of yours")
    return public_item(service.store.review.appeal(upload_id, caller.name, body.reason))


@router.delete("/{upload_id}", response_model=Erased, responses=documented(404))
def erase_upload(upload_id: UploadId, service: ServiceDep, caller: Admin):
    """Erase an upload's bytes and face crops now (idempotent); the audit trail records it."""
    up = found(service.store.uploads.get(upload_id), "upload")
    erased = erase(service.store, service.files, up, ["bytes", "crops"], caller.name, "erasure request")
    up = service.store.uploads.get(upload_id)
    return {"id": upload_id, "erased": erased, "bytes_erased_at": iso(up["bytes_erased_at"]),
            "crops_erased_at": iso(up["crops_erased_at"])}


async def _parse_form(request: Request, body: Path):
    """Parse a multipart body already on disk (the file part spools to disk, not memory)."""

    async def stream():
        with body.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    return await MultiPartParser(request.headers, stream(), max_files=1, max_fields=10).parse()


async def _chunks(part):
    while chunk := await part.read(1 << 20):
        yield chunk


async def _probe(service: Service, path: Path) -> Scan:
    """The upload's header read by the engine's admission worker (under the job time limit)."""
    loop = asyncio.get_running_loop()
    checked: asyncio.Future[Scan] = loop.create_future()

    def answer(scan: Scan) -> None:  # on the scanner's result thread
        with contextlib.suppress(RuntimeError):  # the server is stopping: nobody waits any more
            loop.call_soon_threadsafe(lambda: checked.done() or checked.set_result(scan))

    await run_in_threadpool(service.engine.admission.submit, path, answer)  # it may start a worker
    return await checked


def _metadata(raw: str | None) -> dict:
    if not raw:
        return {}
    if len(raw) > MAX_METADATA:
        raise HTTPException(422, f"metadata is limited to {MAX_METADATA} characters")
    try:
        meta = _METADATA.validate_python(raw)
    except ValidationError as e:
        raise HTTPException(422, f"metadata must be a JSON object: {e.errors()[0]['msg']}")
    try:  # the parser takes NaN, Infinity, 1e400 and lone surrogates: no database or webhook body can
        json.dumps(meta, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError):
        raise HTTPException(422, "metadata must hold finite numbers and valid Unicode text")
    return meta


def _callback(raw: str | None, allow_hosts: list[str]) -> str | None:
    """The callback URL as stored, or 422: not http(s), too long, with credentials, or to a host
    that does not resolve or resolves to a non-public address (unless allow-listed)."""
    if not raw:
        return None
    try:
        url = str(_URL.validate_python(raw))
    except ValidationError:
        raise HTTPException(422, "callback_url must be an http(s) URL")
    if len(url) > MAX_URL:  # normalising may lengthen it (percent-encoding)
        raise HTTPException(422, f"callback_url is limited to {MAX_URL} characters")
    try:
        address(url, allow_hosts)
    except Refused as e:
        raise HTTPException(422, str(e))
    return url


def _safe_name(name: str | None) -> str | None:
    """A client's file name, for display only: never used as a path."""
    return re.sub(r"[^\w.\- ]", "_", Path(name).name)[:255] if name else None
