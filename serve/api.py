"""The HTTP API: uploads in, Verdicts out, the review queue, health and metrics. Errors are JSON."""

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AnyHttpUrl, BaseModel, Field, Json, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from detector.media import CorruptMedia, MediaError, MediaTooLarge, UnsupportedMedia, probe
from serve import media, metrics, workbench
from serve.config import ServeConfig
from serve.engine import Engine
from serve.files import FileStore, TooLarge
from serve.reports import report_csv, summary
from serve.retention import Sweeper, erase
from serve.store import Conflict, Store, iso, public_event, public_item, public_upload
from serve.webhooks import Refused, Sender, address

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (`deepfake-detect api-key`)")
BEARER = HTTPBearer(auto_error=False, description="the same API key as a bearer token")
UploadId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="upload id")]
ItemId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
_MEDIA_STATUS = {UnsupportedMedia: 415, MediaTooLarge: 413, CorruptMedia: 422}
_MULTIPART_SLACK = 64 * 1024  # form boundaries and fields around the file
_URL = TypeAdapter(AnyHttpUrl)
_METADATA = TypeAdapter(Json[dict[str, Any]])  # its parser refuses JSON nested over 200 levels deep
MAX_METADATA, MAX_URL = 10_000, 2048  # characters, from the query or the form alike
log = logging.getLogger("serve.api")


class UploadStatus(BaseModel):
    id: str
    status: Literal["queued", "processing", "scored", "failed"]
    sha256: str
    media_type: str
    size: int
    metadata: dict
    created_at: datetime
    scored_at: datetime | None = None
    verdict: dict | None = None
    error: dict | None = None


class ReviewItem(BaseModel):
    id: int
    upload_id: str
    kind: Literal["detection", "appeal"]
    priority: float
    state: Literal["pending", "claimed", "decided"]
    version: int
    reviewer: str | None = None
    lease_until: datetime | None = None
    label: str | None = None
    reason: str | None = None
    created_at: datetime
    decided_at: datetime | None = None
    media_type: str | None = None
    decision: str | None = None
    appeal_of: int | None = None  # appeals: the decided item contested
    score: float | None = None  # the model's score of the upload
    filename: str | None = None  # as the uploader named it
    metadata: dict | None = None  # the uploader's metadata
    uploaded_at: datetime | None = None


class Appeal(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class ItemDetail(BaseModel):
    item: ReviewItem
    upload: UploadStatus
    evidence: list[dict]  # the most suspicious face crops: url, frame_url (the frame, face boxed), track, t, score
    appeal: dict | None = None  # appeals: the uploader's reason and the decision contested


class Erased(BaseModel):
    id: str
    erased: list[str]  # what this call erased (empty when it was gone already)
    bytes_erased_at: datetime | None
    crops_erased_at: datetime | None


class Held(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)


class Decision(BaseModel):
    label: Literal["confirmed_fake", "cleared", "escalated", "upheld", "overturned"]  # the last two: appeals
    reason: str = Field(min_length=1, max_length=2000)
    version: int = Field(ge=1, le=2**31 - 1)  # bounded: databases store 32-bit and 64-bit integers


class ApiError(BaseModel):
    error: str
    detail: str | list | dict | None = None


def _error(status: int, error: str, detail=None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]


class Api:
    """Holds the parts the routes share; `create_app` wires them into FastAPI."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.store = Store(cfg.database_url)
        self.files = FileStore(cfg.store_dir)
        self.engine: Engine | None = None
        self.sender: Sender | None = None
        self.sweeper: Sweeper | None = None

    def start(self) -> None:
        self.store.migrate()
        for name, key in self.cfg.api_keys.items():
            self.store.add_key(name, key.roles, key.key)
        if not self.store.key_count():
            log.warning("no API keys: every call will answer 401; create one with `deepfake-detect api-key`")
        self.engine = Engine(self.cfg, self.store, self.files)
        self.engine.start()
        self.sender = Sender(self.cfg.webhooks, self.store)
        self.sender.start()
        self.sweeper = Sweeper(self.store, self.files, self.cfg.retention)
        self.sweeper.start()
        metrics.QUEUED.set_function(lambda: self.store.count("queued"))
        for state in ("pending", "claimed"):
            metrics.REVIEW_ITEMS.labels(state).set_function(lambda state=state: self.store.review_count(state))
        metrics.REVIEW_OLDEST.set_function(lambda: time.time() - (self.store.oldest_pending() or time.time()))
        for model in self.engine.scorer.models:
            metrics.MODEL.labels(model.kind).info({"name": model.name, "version": model.version})

    def stop(self) -> None:
        for part in (self.sweeper, self.sender, self.engine):
            if part:
                part.stop()

    def role(self, *allowed: str):
        """Dependency: the caller (key name and roles), when its key has one of `allowed` roles (admin has all)."""

        def check(bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
                  x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> Caller:
            key = x_api_key or (bearer.credentials.strip() if bearer else "")
            found = self.store.key_roles(key) if key else None
            if found is None:
                raise HTTPException(401, "a valid API key is needed (Authorization: Bearer KEY or X-API-Key)",
                                    headers={"WWW-Authenticate": "Bearer"})
            name, roles = found
            if not roles & {*allowed, "admin"}:
                raise HTTPException(403, f"this key lacks the role for this: one of {sorted(allowed)}")
            return Caller(name, frozenset(roles))

        return check


def create_app(cfg: ServeConfig) -> FastAPI:
    api = Api(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(api.start)
        yield
        await run_in_threadpool(api.stop)

    app = FastAPIOffline(title="deepfake-detector", version="1", lifespan=lifespan,  # /docs without a CDN
                  responses={401: {"model": ApiError}, 403: {"model": ApiError}, 422: {"model": ApiError}})
    app.state.api = api
    app.add_middleware(metrics.Measure)
    app.include_router(media.router(api))
    app.include_router(workbench.router(api))
    submit, review, anyone, admin = api.role("submit"), api.role("review"), api.role("submit", "review"), api.role("admin")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, _reason(exc.status_code), exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, "invalid_request", json.loads(json.dumps(exc.errors(), default=str)))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        return _error(500, "internal_error", type(exc).__name__)

    upload_body = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, "metadata": {"type": "string"},
            "callback_url": {"type": "string"}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

    @app.post("/v1/uploads", status_code=202, response_model=UploadStatus, openapi_extra=upload_body,
              responses={200: {"model": UploadStatus}, 409: {"model": ApiError}, 413: {"model": ApiError},
                         415: {"model": ApiError}, 408: {"model": ApiError}, 429: {"model": ApiError}})
    async def create_upload(request: Request, caller: Annotated[Caller, Depends(submit)],
                            wait: Annotated[float, Query(ge=0, description="seconds to wait for the Verdict")] = 0,
                            callback_url: Annotated[str | None, Query(max_length=MAX_URL)] = None,
                            metadata: Annotated[str | None, Query(max_length=MAX_METADATA, description="JSON object")] = None,
                            idempotency_key: Annotated[str | None, Header(max_length=255)] = None):
        """Keep an upload (multipart `file` or the raw body) and queue it for scoring: 202 with its id,
        or 200 with the Verdict when `wait` seconds were enough."""
        limit = cfg.limits.max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + _MULTIPART_SLACK:
            return _error(413, "too_large", f"uploads are limited to {limit} bytes")
        if await run_in_threadpool(api.store.count, "queued") >= cfg.max_queued:
            return _error(429, "busy", "the scoring queue is full; retry later", {"Retry-After": "5"})
        ctype = request.headers.get("content-type", "")
        try:
            tmp, sha, size = await asyncio.wait_for(api.files.receive(request.stream(), limit + _MULTIPART_SLACK),
                                                    cfg.upload_timeout_s)
        except TooLarge:
            return _error(413, "too_large", f"uploads are limited to {limit} bytes")
        except TimeoutError:
            return _error(408, "timeout", f"the upload took longer than {cfg.upload_timeout_s:g} s to arrive")
        try:
            if ctype.startswith("multipart/form-data"):
                form = await _parse_form(request, tmp)
                part = form.get("file")
                if part is None or isinstance(part, str):
                    return _error(422, "invalid_request", "multipart uploads need a `file` part")
                file_tmp, sha, size = await api.files.receive(_chunks(part), limit + 1)
                tmp.unlink()
                tmp, filename = file_tmp, part.filename
                metadata = form.get("metadata") or metadata
                callback_url = form.get("callback_url") or callback_url
            else:
                filename = None
            if size > limit:
                return _error(413, "too_large", f"uploads are limited to {limit} bytes")
            if size == 0:
                return _error(422, "empty", "the upload has no bytes")
            meta = _metadata(metadata)
            url = await run_in_threadpool(_callback, callback_url, cfg.webhooks.allow_hosts)
            try:
                info = await run_in_threadpool(probe, tmp, cfg.limits)
            except MediaError as e:
                return _error(_MEDIA_STATUS.get(type(e), 422), e.reason, str(e).replace(str(tmp), "upload"))

            def keep_and_record():
                with api.files.lock(sha):  # retention cannot erase these bytes in between
                    fresh = not api.files.path(sha).exists()
                    api.files.keep(tmp, sha)
                    try:
                        return api.store.add_upload(sha, size, info.kind, _safe_name(filename), meta, url,
                                                    idempotency_key, caller.name)
                    except Exception:  # no row will ever point at bytes stored just now
                        if fresh:
                            api.files.erase(sha)
                        raise

            try:
                up, created = await run_in_threadpool(keep_and_record)
            except Conflict as e:
                return _error(409, "conflict", str(e))
        except (TooLarge, MultiPartException) as e:
            return _error(413 if isinstance(e, TooLarge) else 422, "invalid_upload", str(e))
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        if created:
            api.engine.wake()
        if wait:
            await run_in_threadpool(api.engine.wait_for, up["id"], min(wait, cfg.max_wait_s))
            up = await run_in_threadpool(api.store.upload, up["id"])
            if up["status"] in ("scored", "failed"):
                return JSONResponse(public_upload(up), status_code=200)
        return JSONResponse(public_upload(up), status_code=202)

    @app.get("/v1/uploads/{upload_id}", response_model=UploadStatus, responses={404: {"model": ApiError}})
    def get_upload(upload_id: UploadId, caller: Annotated[Caller, Depends(anyone)]):
        """An upload's status (queued, processing, scored, failed with its reason) and Verdict; `submit`
        keys see only their own uploads."""
        up = api.store.upload(upload_id)
        if up is None or not (caller.roles & {"review", "admin"} or up["client"] == caller.name):
            raise HTTPException(404, "no such upload")  # the same answer whether or not the id exists
        return public_upload(up)

    @app.post("/v1/uploads/{upload_id}/appeal", status_code=201, response_model=ReviewItem,
              responses={404: {"model": ApiError}, 409: {"model": ApiError}})
    def appeal(upload_id: UploadId, body: Appeal, caller: Annotated[Caller, Depends(submit)]):
        """The uploader contests the decision: the upload returns to review as an appeal, for another reviewer."""
        up = api.store.upload(upload_id)
        if up is None or (up["client"] != caller.name and "admin" not in caller.roles):
            raise HTTPException(404, "no such upload of yours")
        try:
            return public_item(api.store.appeal(upload_id, caller.name, body.reason))
        except Conflict as e:
            raise HTTPException(409, str(e))

    @app.delete("/v1/uploads/{upload_id}", response_model=Erased, responses={404: {"model": ApiError}})
    def erase_upload(upload_id: UploadId, caller: Annotated[Caller, Depends(admin)]):
        """Erase an upload's bytes and face crops now (idempotent); the audit trail records it."""
        up = _found(api.store.upload(upload_id), "upload")
        erased = erase(api.store, api.files, up, ["bytes", "crops"], caller.name, "erasure request")
        up = api.store.upload(upload_id)
        return {"id": upload_id, "erased": erased, "bytes_erased_at": iso(up["bytes_erased_at"]),
                "crops_erased_at": iso(up["crops_erased_at"])}

    @app.get("/v1/reports/summary", responses={200: {"content": {"text/csv": {}}}})
    def report_summary(_: Annotated[Caller, Depends(admin)],
                       since: Annotated[date, Query(description="first day counted (UTC)")] = date(1970, 1, 1),
                       format: Literal["json", "csv"] = "json"):
        """Uploads scored, decisions, reviewer agreement with the model, appeals, time in queue."""
        report = summary(api.store, datetime.combine(since, datetime.min.time(), timezone.utc).timestamp())
        if format == "csv":
            return Response(report_csv(report), media_type="text/csv")
        return report

    @app.get("/v1/review/items", response_model=list[ReviewItem])
    def list_items(caller: Annotated[Caller, Depends(review)],
                   state: Literal["pending", "claimed", "decided"] = "pending",
                   limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
                   mine: Annotated[bool, Query(description="only items the caller claimed or decided")] = False):
        """Review items by priority (most suspicious first, then oldest), with their upload's file name,
        metadata, score and model decision."""
        return [public_item(i) for i in api.store.items(state, limit, offset, caller.name if mine else None)]

    @app.post("/v1/review/claim", response_model=ItemDetail, responses={204: {"description": "nothing to review"}})
    def claim(reviewer: Annotated[Caller, Depends(review)]):
        """Lease the most urgent pending item to the caller; an expired lease frees it again."""
        item = api.store.claim_item(reviewer.name, cfg.review.lease_s)
        return Response(status_code=204) if item is None else _detail(api.store.item(item["id"]))

    @app.post("/v1/review/items/{item_id}/claim", response_model=ItemDetail,
              responses={404: {"model": ApiError}, 409: {"model": ApiError}})
    def claim_one(item_id: ItemId, reviewer: Annotated[Caller, Depends(review)]):
        """Lease this item to the caller, when it is pending (or its lease ran out)."""
        _found(api.store.item(item_id), "review item")
        item = api.store.claim_item(reviewer.name, cfg.review.lease_s, item_id)
        if item is None:
            raise HTTPException(409, "the item is claimed by someone else, decided, or an appeal of your decision")
        return _detail(api.store.item(item["id"]))

    @app.post("/v1/review/items/{item_id}/release", response_model=ReviewItem,
              responses={404: {"model": ApiError}, 409: {"model": ApiError}})
    def release(item_id: ItemId, body: Held, reviewer: Annotated[Caller, Depends(review)]):
        """Give back an item you hold at `version`, undecided: pending again for anyone."""
        _found(api.store.item(item_id), "review item")
        try:
            return public_item(api.store.release(item_id, reviewer.name, body.version))
        except Conflict as e:
            raise HTTPException(409, str(e))

    @app.get("/v1/review/items/{item_id}", response_model=ItemDetail, responses={404: {"model": ApiError}})
    def get_item(item_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], _: Annotated[Caller, Depends(review)]):
        """An item with its upload's Verdict (score timeline, audio segments) and evidence crops."""
        return _detail(_found(api.store.item(item_id), "review item"))

    @app.post("/v1/review/items/{item_id}/decision", response_model=ReviewItem,
              responses={404: {"model": ApiError}, 409: {"model": ApiError}})
    def decide(item_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], body: Decision,
               reviewer: Annotated[Caller, Depends(review)]):
        """Decide an item you hold at its current `version` (409 when stale or not yours)."""
        _found(api.store.item(item_id), "review item")
        try:
            return public_item(api.store.decide(item_id, reviewer.name, body.label, body.reason, body.version))
        except Conflict as e:
            raise HTTPException(409, str(e))

    @app.get("/v1/review/items/{item_id}/audit", response_model=list[dict], responses={404: {"model": ApiError}})
    def audit(item_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], _: Annotated[Caller, Depends(review)]):
        """Everything that happened to the item's upload, oldest first: append-only."""
        item = _found(api.store.item(item_id), "review item")
        return [public_event(e) for e in api.store.audit(upload_id=item["upload_id"])]

    @app.get("/v1/review/evidence/{upload_id}/{name}", response_class=FileResponse,
             responses={404: {"model": ApiError}})
    def evidence(upload_id: UploadId, name: Annotated[str, PathParam(pattern=r"^(crop|frame)\d{1,3}\.jpg$")],
                 _: Annotated[Caller, Depends(review)]):
        """A face crop, or the frame it came from, kept as evidence (reviewers only)."""
        path = api.files.evidence(upload_id) / name
        if not path.is_file():
            raise HTTPException(404, "no such evidence")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ApiError}})
    def readyz():
        """Ready when the models are loaded and the database answers."""
        if api.engine is None:
            raise HTTPException(503, "models are loading")
        try:
            queued = api.store.count("queued")
        except Exception as e:
            raise HTTPException(503, f"database: {type(e).__name__}")
        return {"status": "ready", "models": [m.model_dump() for m in api.engine.scorer.models], "queued": queued}

    @app.get("/metrics", include_in_schema=False)
    def prometheus():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/review", include_in_schema=False)
    def review_page():
        return HTMLResponse((Path(__file__).parent / "static" / "review.html").read_text())

    @app.get("/review.js", include_in_schema=False)
    def review_script():
        return FileResponse(Path(__file__).parent / "static" / "review.js", media_type="text/javascript")

    def _detail(item: dict) -> dict:
        folder = api.files.evidence(item["upload_id"])
        crops = []
        base = f"/v1/review/evidence/{item['upload_id']}"
        for meta in sorted(folder.glob("crop*.json"), key=lambda p: int(p.stem[4:])):
            info = json.loads(meta.read_text())
            crops.append({k: info[k] for k in ("track", "t", "score")} | {"url": f"{base}/{meta.stem}.jpg"}
                         | ({"frame_url": f"{base}/frame{meta.stem[4:]}.jpg"} if info.get("frame") else {}))
        appeal = None
        if item["kind"] == "appeal":
            first = api.store.item(item["appeal_of"])
            why = [e["detail"]["reason"] for e in api.store.audit(item_id=item["id"]) if e["action"] == "appealed"]
            appeal = {"reason": why[0] if why else None,
                      "first_decision": {k: first[k] for k in ("id", "label", "reviewer", "reason")}
                      | {"decided_at": iso(first["decided_at"])}}
        return {"item": public_item(item), "upload": public_upload(api.store.upload(item["upload_id"])),
                "evidence": crops, "appeal": appeal}

    return app


def _reason(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            409: "conflict", 422: "invalid_request", 503: "unavailable"}.get(status, "error")


def _found(row: dict | None, what: str) -> dict:
    if row is None:
        raise HTTPException(404, f"no such {what}")
    return row


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


def _metadata(raw: str | None) -> dict:
    if not raw:
        return {}
    if len(raw) > MAX_METADATA:
        raise HTTPException(422, f"metadata is limited to {MAX_METADATA} characters")
    try:
        return _METADATA.validate_python(raw)
    except ValidationError as e:
        raise HTTPException(422, f"metadata must be a JSON object: {e.errors()[0]['msg']}")


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
