"""The review queue: items by priority, claims with leases, decisions, the audit trail, evidence,
and the reviewer page with its settings."""

import json
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response

from serve.deps import ItemId, Kept, Reviewer, ServiceDep, UploadId, found
from serve.schemas import Held, ItemDetail, ReviewDecision, ReviewItem, documented
from serve.service import Service
from serve.store.public import iso, public_event, public_item, public_upload

router = APIRouter(tags=["review"])
STATIC = Path(__file__).resolve().parents[1] / "static"


@router.get("/v1/review/items", response_model=list[ReviewItem])
def list_items(service: ServiceDep, caller: Reviewer, keep: Kept, state: Literal["pending", "claimed", "decided"] = "pending",
               limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
               mine: Annotated[bool, Query(description="only items the caller claimed or decided")] = False):
    """Review items by priority (most suspicious first, then oldest), with their upload's file name,
    metadata, score and model decision; narrowed by media type, model decision, channel, waiting time."""
    return [public_item(i) for i in service.store.review.items(state, limit, offset, caller.name if mine else None,
                                                               senior="admin" in caller.roles, keep=keep)]


@router.post("/v1/review/claim", response_model=ItemDetail, responses={204: {"description": "nothing to review"}})
def claim(service: ServiceDep, reviewer: Reviewer, keep: Kept):
    """Lease the most urgent pending item the filters keep to the caller; an expired lease frees it again."""
    review = service.cfg.review
    item = service.store.review.claim(reviewer.name, review.lease_s, senior="admin" in reviewer.roles,
                                      per_media_s=review.lease_per_media_s, keep=keep)
    return Response(status_code=204) if item is None else _detail(service, item)


@router.post("/v1/review/items/{item_id}/claim", response_model=ItemDetail, responses=documented(404, 409))
def claim_one(item_id: ItemId, service: ServiceDep, reviewer: Reviewer):
    """Lease this item to the caller, when it is pending (or its lease ran out)."""
    found(service.store.review.get(item_id), "review item")
    review = service.cfg.review
    item = service.store.review.claim(reviewer.name, review.lease_s, item_id, senior="admin" in reviewer.roles,
                                      per_media_s=review.lease_per_media_s)
    if item is None:
        raise HTTPException(409, "the item is claimed by someone else, decided, an appeal of your decision, "
                                 "or an escalation (for an admin)")
    return _detail(service, item)


@router.post("/v1/review/items/{item_id}/release", response_model=ReviewItem, responses=documented(404, 409))
def release(item_id: ItemId, body: Held, service: ServiceDep, reviewer: Reviewer):
    """Give back an item you hold at `version`, undecided: pending again for anyone."""
    found(service.store.review.get(item_id), "review item")
    return public_item(service.store.review.release(item_id, reviewer.name, body.version))


@router.post("/v1/review/items/{item_id}/renew", response_model=ReviewItem, responses=documented(404, 409))
def renew(item_id: ItemId, body: Held, service: ServiceDep, reviewer: Reviewer):
    """Extend the lease on an item you hold at `version`, as long as a claim gives it, from now (the reviewer page
    does this while it is open); 409 when the lease already ran out or the item is not yours."""
    found(service.store.review.get(item_id), "review item")
    review = service.cfg.review
    return public_item(service.store.review.renew(item_id, reviewer.name, body.version, review.lease_s,
                                                  review.lease_per_media_s))


@router.get("/v1/review/items/{item_id}", response_model=ItemDetail, responses=documented(404))
def get_item(item_id: ItemId, service: ServiceDep, _: Reviewer):
    """An item with its upload's Verdict (score timeline, audio segments) and evidence crops."""
    return _detail(service, found(service.store.review.get(item_id), "review item"))


@router.post("/v1/review/items/{item_id}/decision", response_model=ReviewItem, responses=documented(404, 409))
def decide(item_id: ItemId, body: ReviewDecision, service: ServiceDep, reviewer: Reviewer):
    """Decide an item you hold at its current `version` (409 when stale or not yours)."""
    found(service.store.review.get(item_id), "review item")
    return public_item(service.store.review.decide(item_id, reviewer.name, body.label, body.reason, body.version))


@router.post("/v1/review/items/{item_id}/amend", response_model=ReviewItem, responses=documented(404, 409))
def amend(item_id: ItemId, body: ReviewDecision, service: ServiceDep, reviewer: Reviewer):
    """Change your own decision within `review.amend_s` of making it, at its current `version`, while no
    escalation or appeal came of it; audited with what it was (409 otherwise)."""
    found(service.store.review.get(item_id), "review item")
    return public_item(service.store.review.amend(item_id, reviewer.name, body.label, body.reason, body.version,
                                                  service.cfg.review.amend_s))


@router.get("/v1/review/items/{item_id}/audit", response_model=list[dict], responses=documented(404))
def audit(item_id: ItemId, service: ServiceDep, _: Reviewer):
    """Everything that happened to the item's upload, oldest first: append-only."""
    item = found(service.store.review.get(item_id), "review item")
    return [public_event(e) for e in service.store.audit.events(upload_id=item["upload_id"])]


@router.get("/v1/review/evidence/{upload_id}/{name}", response_class=FileResponse, responses=documented(404))
def evidence(upload_id: UploadId, name: Annotated[str, PathParam(pattern=r"^(crop|frame)\d{1,3}\.jpg$")],
             service: ServiceDep, _: Reviewer):
    """A face crop, or the frame it came from, kept as evidence (reviewers only)."""
    path = service.files.evidence(upload_id) / name
    if not path.is_file():
        raise HTTPException(404, "no such evidence")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/v1/review/settings")
def settings(service: ServiceDep, caller: Reviewer) -> dict:
    """Who the caller is, each model's `review` and `likely_fake` thresholds (for charts), the
    deployment's preset reasons (keys 1-9), how long a claim lasts and how long a decision can be amended."""
    scorer = service.engine.scorer
    bundles = {"visual": scorer.visual, "audio": scorer.audio}
    return {"reviewer": caller.name,
            "thresholds": {modality: b[1].thresholds.model_dump() for modality, b in bundles.items() if b},
            "preset_reasons": service.cfg.review.preset_reasons, "lease_s": service.cfg.review.lease_s,
            "amend_s": service.cfg.review.amend_s}


# The page loads only its own script, styles, evidence and media: nothing injected can run or call out,
# no other site may frame it, and its URLs (media links carry tokens) are never sent on as a Referer.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@router.get("/review", include_in_schema=False)
def review_page():
    return HTMLResponse((STATIC / "review.html").read_text(), headers=PAGE_HEADERS)


@router.get("/review.js", include_in_schema=False)
def review_script():
    return FileResponse(STATIC / "review.js", media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff"})


def _detail(service: Service, item: dict) -> dict:
    """An item with its upload, evidence crops (and their frames) and, for appeals, what is contested."""
    store = service.store
    folder = service.files.evidence(item["upload_id"])
    crops = []
    base = f"/v1/review/evidence/{item['upload_id']}"
    for meta in sorted(folder.glob("crop*.json"), key=lambda p: int(p.stem[4:])):
        info = json.loads(meta.read_text())
        crops.append({k: info[k] for k in ("track", "t", "score")} | {"url": f"{base}/{meta.stem}.jpg"}
                     | ({"frame_url": f"{base}/frame{meta.stem[4:]}.jpg"} if info.get("frame") else {}))
    appeal = None
    if item["kind"] == "appeal":
        first = store.review.get(item["appeal_of"])
        why = [e["detail"]["reason"] for e in store.audit.events(item_id=item["id"]) if e["action"] == "appealed"]
        appeal = {"reason": why[0] if why else None,
                  "first_decision": {k: first[k] for k in ("id", "label", "reviewer", "reason")}
                  | {"decided_at": iso(first["decided_at"])}}
    escalation = None
    if item["kind"] == "escalation":
        first = store.review.get(item["appeal_of"])
        escalation = {"by": first["reviewer"], "note": first["reason"], "at": iso(first["decided_at"]), "item": first["id"]}
    return {"item": public_item(item), "upload": public_upload(store.uploads.get(item["upload_id"])),
            "evidence": crops, "appeal": appeal, "escalation": escalation}
