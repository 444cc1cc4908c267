"""Typed dependencies of the routes, in one place: the service, the caller and its role, path ids."""

from dataclasses import dataclass
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Query, Request, Security
from pydantic import BaseModel, Field
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serve.service import Service
from serve.store.review import narrowed

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (`deepfake-detect api-key`)")
BEARER = HTTPBearer(auto_error=False, description="the same API key as a bearer token")


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def authorize(service: Service, key: str, allowed: tuple[str, ...]) -> Caller:
    """The key's owner, when the key has one of `allowed` roles (admin has all); else 401 or 403."""
    found = service.store.keys.find(key) if key else None
    if found is None:
        raise HTTPException(401, "a valid API key is needed (Authorization: Bearer KEY or X-API-Key)",
                            headers={"WWW-Authenticate": "Bearer"})
    name, roles = found
    if not roles & {*allowed, "admin"}:
        raise HTTPException(403, f"this key lacks the role for this: one of {sorted(allowed)}")
    return Caller(name, frozenset(roles))


def _role(*allowed: str):
    def check(service: ServiceDep,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
              x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> Caller:
        return authorize(service, x_api_key or (bearer.credentials.strip() if bearer else ""), allowed)

    return check


def _metrics_reader(service: ServiceDep,
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
                    x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> Caller | None:
    """Anyone where `metrics_public` says so (None), else a `metrics` or `admin` key's holder."""
    return None if service.cfg.metrics_public else _role("metrics")(service, bearer, x_api_key)


Submitter = Annotated[Caller, Depends(_role("submit"))]
Reviewer = Annotated[Caller, Depends(_role("review"))]
AnyCaller = Annotated[Caller, Depends(_role("submit", "review"))]
Admin = Annotated[Caller, Depends(_role("admin"))]
MetricsReader = Annotated[Caller | None, Depends(_metrics_reader)]
UploadId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="upload id")]
ItemId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="review item id")]


def found(row: dict | None, what: str) -> dict:
    """The row, or 404 naming what was not found."""
    if row is None:
        raise HTTPException(404, f"no such {what}")
    return row


class QueueFilters(BaseModel):
    """What a reviewer narrows the queue (and `claim`'s next item) to; each left out keeps everything."""

    media_type: Literal["image", "video", "audio"] | None = None
    decision: Literal["likely_fake", "review", "clear", "no_signal"] | None = Field(None, description="the models' decision")
    channel: str | None = Field(None, max_length=200, description="the `channel` in the upload's metadata")
    waited_min: float | None = Field(None, ge=0, description="items waiting at least this many minutes")


def _kept(filters: Annotated[QueueFilters, Query()]) -> sa.ColumnElement[bool]:
    return narrowed(filters.media_type, filters.decision, filters.channel,
                    filters.waited_min * 60 if filters.waited_min else None)


Kept = Annotated[sa.ColumnElement[bool], Depends(_kept)]
