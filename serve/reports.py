"""What a platform shows its trust team or regulator: volumes, decisions, reviewer agreement with
the model, appeals and their outcomes, time in queue. JSON or CSV.

Agreement: among detection items a reviewer decided `confirmed_fake` or `cleared`, the share where
the model leaned the same way (calibrated score >= 0.5 means it leaned fake); `escalated` is left
out. Time in queue: upload accepted -> Verdict stored, and review item opened -> decided.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa

from detector.version import software
from serve.store import Store
from serve.store.tables import review_items, uploads


def _pcts(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    v = np.asarray(values)
    return {"n": len(v), "p50": round(float(np.percentile(v, 50)), 3), "p95": round(float(np.percentile(v, 95)), 3)}


def summary(store: Store, since: float) -> dict:
    with store.uploads.reading() as c:
        ups = [r._mapping for r in c.execute(sa.select(uploads.c.status, uploads.c.decision, uploads.c.created_at,
                                                       uploads.c.scored_at).where(uploads.c.created_at >= since))]
        items = [r._mapping for r in c.execute(
            sa.select(review_items.c.kind, review_items.c.state, review_items.c.label, review_items.c.created_at,
                      review_items.c.decided_at, uploads.c.score)
            .join(uploads, uploads.c.id == review_items.c.upload_id).where(review_items.c.created_at >= since))]
    status = Counter(u["status"] for u in ups)
    detection = [i for i in items if i["kind"] == "detection"]
    appeals = [i for i in items if i["kind"] == "appeal"]
    judged = [i for i in detection if i["label"] in ("confirmed_fake", "cleared")]
    agree = sum((i["score"] or 0) >= 0.5 if i["label"] == "confirmed_fake" else (i["score"] or 0) < 0.5 for i in judged)
    decided = [i for i in items if i["state"] == "decided"]
    return {
        "since": datetime.fromtimestamp(since, timezone.utc).isoformat(),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "software": software(),
        "uploads": {"received": len(ups), "scored": status["scored"], "failed": status["failed"],
                    "pending": status["queued"] + status["processing"]},
        "decisions": dict(Counter(u["decision"] for u in ups if u["status"] == "scored")),
        "review": {"opened": len(detection), "decided": sum(i["state"] == "decided" for i in detection),
                   "labels": dict(Counter(i["label"] for i in detection if i["label"])),
                   "agreement": {"compared": len(judged), "agree": agree,
                                 "rate": round(agree / len(judged), 4) if judged else None}},
        "appeals": {"received": len(appeals), "upheld": sum(i["label"] == "upheld" for i in appeals),
                    "overturned": sum(i["label"] == "overturned" for i in appeals),
                    "open": sum(i["state"] != "decided" for i in appeals)},
        "time_in_queue_s": {"scoring": _pcts([u["scored_at"] - u["created_at"] for u in ups if u["scored_at"]]),
                            "review": _pcts([i["decided_at"] - i["created_at"] for i in decided])},
    }


def report_csv(report: dict) -> str:
    """One `metric,value` row per number, metrics named by their path (`review.agreement.rate`)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["metric", "value"])

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            w.writerow([prefix, "" if value is None else value])

    walk("", report)
    return out.getvalue()
