"""What the reviewer page needs besides items: the models' thresholds, preset reasons, lease length."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends

if TYPE_CHECKING:
    from serve.api import Api


def router(api: "Api") -> APIRouter:
    r = APIRouter(prefix="/v1/review", tags=["review"])
    review = api.role("review")

    @r.get("/settings")
    def settings(caller: Annotated[object, Depends(review)]) -> dict:
        """Who the caller is, each model's `review` and `likely_fake` thresholds (for charts), the
        deployment's preset reasons (keys 1-9), and how long a claim lasts."""
        scorer = api.engine.scorer
        bundles = {"visual": scorer.visual, "audio": scorer.audio}
        return {"reviewer": caller.name,
                "thresholds": {kind: b[1].thresholds.model_dump() for kind, b in bundles.items() if b},
                "preset_reasons": api.cfg.review.preset_reasons, "lease_s": api.cfg.review.lease_s}

    return r
