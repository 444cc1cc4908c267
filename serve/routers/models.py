"""The model registry for admins: which bundles score (live), which wait (candidate), which were retired;
promotion and rollback, audited. Bundles are registered from the command line (`deepfake-detect model
register`), where their folders are; every server sharing the database switches within
`engine.models_poll_s`."""

from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam

from serve.deps import Admin, ServiceDep
from serve.schemas import documented

router = APIRouter(prefix="/v1/models", tags=["models"])
Version = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="the bundle's version (weights hash)")]


def public_model(m: dict) -> dict:
    return {k: m[k] for k in ("version", "modality", "name", "state", "parent", "path", "metrics")} | {
        "created_at": m["created_at"], "changed_at": m["changed_at"]}


@router.get("", response_model=list[dict])
def list_models(service: ServiceDep, _: Admin):
    """Every registered model, by modality, oldest first."""
    return [public_model(m) for m in service.store.models.listed()]


@router.post("/{version}/promote", responses=documented(404, 409))
def promote(version: Version, service: ServiceDep, admin: Admin) -> dict:
    """Make this version its modality's live model; the one it replaces is retired (the servers switch
    between jobs: none is dropped or scored twice)."""
    return public_model(service.store.models.promote(version, admin.name))


@router.post("/{modality}/rollback", responses=documented(409))
def rollback(modality: Literal["visual", "audio"], service: ServiceDep, admin: Admin) -> dict:
    """Put back the model the live one replaced; the live one is retired."""
    return public_model(service.store.models.rollback(modality, admin.name))


@router.post("/{version}/shadow", responses=documented(404, 409))
def shadow(version: Version, service: ServiceDep, admin: Admin) -> dict:
    """Score a share of uploads (`engine.shadow_share`) with this version beside the live model: its scores
    are recorded, never decide, route or notify."""
    return public_model(service.store.models.shadow(version, admin.name))


@router.get("/{version}/comparison", responses=documented(404))
def comparison(version: Version, service: ServiceDep, _: Admin) -> dict:
    """How this (shadow) version did beside the live model on uploads reviewers have decided: AUC, the
    false-positive rate at the live threshold, decisions it would have changed; per media type and channel."""
    from serve.shadow import compare

    return compare(service.store, version)
