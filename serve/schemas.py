"""The API's request and response shapes, defined once; errors are `ApiError` JSON."""

from datetime import datetime
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


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
    kind: Literal["detection", "appeal", "escalation"]
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
    appeal_of: int | None = None  # appeals: the decided item contested; escalations: the item escalated
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
    escalation: dict | None = None  # escalations: who escalated, when, and their note


class Erased(BaseModel):
    id: str
    erased: list[str]  # what this call erased (empty when it was gone already)
    bytes_erased_at: datetime | None
    crops_erased_at: datetime | None


class Held(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)


class ReviewDecision(BaseModel):
    """A reviewer's label for an item (the model's is the Verdict's `decision`)."""

    label: Literal["confirmed_fake", "cleared", "escalated", "upheld", "overturned"]  # the last two: appeals
    reason: str = Field(min_length=1, max_length=2000)
    version: int = Field(ge=1, le=2**31 - 1)  # bounded: databases store 32-bit and 64-bit integers


class ApiError(BaseModel):
    error: str
    detail: str | list | dict | None = None


ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 422: "invalid_request", 503: "unavailable"}


def error_response(status: int, error: str | None = None, detail=None, headers: dict | None = None) -> JSONResponse:
    """An `ApiError` body; `error` defaults to the status's short name."""
    return JSONResponse({"error": error or ERRORS.get(status, "error"), "detail": detail}, status_code=status,
                        headers=headers)


def documented(*statuses: int) -> dict:
    """OpenAPI `responses` entries saying these statuses answer an `ApiError`."""
    return {s: {"model": ApiError} for s in statuses}
