"""Liveness, readiness (models loaded and answering, database answering) and Prometheus metrics."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve.deps import MetricsReader, ServiceDep
from serve.schemas import documented

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", responses=documented(503))
def readyz(service: ServiceDep):
    """Ready when the models are loaded, no model call has hung, and the database answers."""
    if service.engine is None:
        raise HTTPException(503, "models are loading")
    if stalled := service.engine.stalled():
        raise HTTPException(503, stalled)
    try:
        queued = service.store.uploads.count("queued")
    except Exception as e:
        raise HTTPException(503, f"database: {type(e).__name__}")
    return {"status": "ready", "models": [m.model_dump() for m in service.engine.scorer.models], "queued": queued}


@router.get("/metrics", include_in_schema=False)
def prometheus(_: MetricsReader):
    """Prometheus metrics: for a `metrics` or `admin` key (Authorization: Bearer KEY), or anyone where
    `metrics_public` says so."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
