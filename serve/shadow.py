"""How a shadow model would have done, beside the live one, on the uploads reviewers have decided since
it started: AUC of each, the false-positive rate among cleared uploads at the live model's `review`
threshold, and how many of the live model's decisions the shadow's own thresholds would have changed;
overall, per media type and per channel (the uploader's `channel` metadata)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from detector.bundle import Thresholds
from detector.scoring.fusion import decide
from serve.dataset import final_labels
from serve.store import Store
from serve.store.tables import Missing, review_items, shadow_scores, uploads


def _summary(rows: list[dict]) -> dict:
    y = np.array([r["label"] for r in rows])
    live, shadow = np.array([r["live"] for r in rows]), np.array([r["shadow"] for r in rows])
    cut, real = np.array([r["live_review"] for r in rows]), y == 0
    both = 0 < y.sum() < len(y)
    auc = lambda s: round(float(roc_auc_score(y, s)), 4) if both else None  # noqa: E731
    fpr = lambda s: round(float(np.mean(s[real] >= cut[real])), 4) if real.any() else None  # noqa: E731
    return {"n": len(rows), "n_fake": int(y.sum()), "n_real": int(real.sum()), "auc_live": auc(live),
            "auc_shadow": auc(shadow), "fpr_live": fpr(live), "fpr_shadow_at_live_threshold": fpr(shadow),
            "decisions_changed": sum(r["live_decision"] != r["shadow_decision"] for r in rows)}


def compare(store: Store, version: str) -> dict:
    """The comparison report of shadow model `version` (Missing when it is not registered)."""
    model = store.models.get(version)
    if model is None:
        raise Missing(f"no model {version!r} in the registry")
    with store.uploads.reading() as c:
        shadowed = {r.upload_id: r for r in c.execute(sa.select(shadow_scores).where(
            (shadow_scores.c.version == version) & shadow_scores.c.score.is_not(None)))}
        ups = {u.id: u._mapping for u in c.execute(sa.select(uploads).where(uploads.c.id.in_(list(shadowed))))}
        items: dict[str, list[dict]] = defaultdict(list)
        for r in c.execute(sa.select(review_items).where(review_items.c.upload_id.in_(list(shadowed)))
                           .order_by(review_items.c.created_at, review_items.c.id)):
            items[r.upload_id].append(dict(r._mapping))
    rows = []
    for upload_id, s in shadowed.items():
        up, label = ups.get(upload_id), final_labels(items.get(upload_id, []))
        verdict = (up or {}).get("verdict") or {}
        live = (verdict.get(model["modality"]) or {}).get("score")
        used = [m for m in verdict.get("models", []) if m.get("modality") == model["modality"]]
        if label is None or not items.get(upload_id) or live is None or not used:
            continue  # not decided by reviewers (yet), or the live model saw nothing of this modality
        thresholds = used[0]["thresholds"]
        rows.append({"label": label, "live": live, "shadow": s.score, "live_review": thresholds["review"],
                     "live_decision": decide(live, Thresholds(**thresholds)), "shadow_decision": s.decision,
                     "media_type": up["media_type"], "channel": (up["meta"] or {}).get("channel", "-")})
    report = {"version": version, "modality": model["modality"], "name": model["name"], "state": model["state"],
              "shadow_scored": len(shadowed), "overall": _summary(rows) if rows else {"n": 0}}
    for key in ("media_type", "channel"):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            groups[r[key]].append(r)
        report[f"by_{key}"] = {k: _summary(v) for k, v in sorted(groups.items())}
    return report
