"""Rows as the API (and the webhooks) show them: times in ISO 8601, failures as their error record."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

TIMES = {"lease_until", "created_at", "decided_at", "uploaded_at", "at"}  # stored as Unix times
ITEM_KEYS = ("id", "upload_id", "kind", "priority", "state", "version", "reviewer", "lease_until", "label", "reason",
             "created_at", "decided_at", "media_type", "decision", "appeal_of", "score", "filename", "metadata",
             "uploaded_at")


def iso(ts: float | None) -> str | None:
    """A stored Unix time as the API shows times: ISO 8601, UTC."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def public_upload(up: dict) -> dict[str, Any]:
    out = {"id": up["id"], "status": up["status"], "sha256": up["sha256"], "media_type": up["media_type"],
           "size": up["size"], "metadata": up["meta"], "created_at": iso(up["created_at"]),
           "scored_at": iso(up["scored_at"]), "verdict": up["verdict"]}
    if up["status"] == "failed" and up["reason"]:
        out["error"] = json.loads(up["reason"])
    return out


def public_event(event: dict) -> dict[str, Any]:
    return _iso_times(event)


def public_item(item: dict) -> dict[str, Any]:
    """A review item, with what a reviewer sees of its upload when the row has it."""
    return _iso_times({k: item[k] for k in ITEM_KEYS if k in item})


def _iso_times(r: dict) -> dict[str, Any]:
    return {k: iso(v) if k in TIMES else v for k, v in r.items()}
