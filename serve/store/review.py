"""The review queue: items by priority, claims with leases, decisions, appeals; each change audited."""

from __future__ import annotations

import time

import sqlalchemy as sa

from detector.scoring.fusion import SEVERITY
from serve.store.audit import record
from serve.store.public import public_item, public_upload
from serve.store.tables import Conflict, Repository, review_items, row, skip_locked, uploads
from serve.store.webhooks import queue_webhook

LABELS = {"detection": ("confirmed_fake", "cleared", "escalated"), "appeal": ("upheld", "overturned"),
          "escalation": ("confirmed_fake", "cleared")}  # escalations: a senior's (admin's) final decision
STALE = "the item changed, is not claimed by you, or its lease ran out"
APPEAL_PRIORITY = 100.0  # added to the contested item's: complaints come before new detections
ESCALATION_PRIORITY = 200.0  # added to the escalated item's: the senior queue, most urgent first


def triage(verdict: dict) -> float:
    """A detection item's priority: the decision's severity, then how far the most suspicious model's
    score is over that model's own review threshold (scores of different models are not on one scale)."""
    scores = {"visual": (verdict.get("visual") or {}).get("score"), "audio": (verdict.get("audio") or {}).get("score")}
    margins = [scores[m["modality"]] - m["thresholds"]["review"] for m in verdict.get("models", [])
               if scores.get(m["modality"]) is not None]
    return 10.0 * SEVERITY.get(verdict.get("decision"), 0) + max(-1.0, min(1.0, max(margins, default=0.0)))


def media_seconds(verdict: dict | None) -> float:
    """How long the upload plays, as far as its Verdict tells: the last scored frame or sound window."""
    v = verdict or {}
    frames = [f["t"] for t in (v.get("visual") or {}).get("faces", []) for f in t["frames"]]
    windows = [s["end"] for s in (v.get("audio") or {}).get("segments", [])]
    return max(frames + windows, default=0.0)


def _lease(c: sa.Connection, item_id: int, lease_s: float, per_media_s: float) -> float:
    """A lease long enough to watch the item's media: `lease_s` plus `per_media_s` per second of it."""
    verdict = c.execute(sa.select(uploads.c.verdict).join(review_items, review_items.c.upload_id == uploads.c.id)
                        .where(review_items.c.id == item_id)).scalar()
    return lease_s + per_media_s * media_seconds(verdict)


def open_item(c: sa.Connection, upload_id: str, kind: str, priority: float, now: float) -> int:
    """Queue an upload for review, in the transaction that stores its Verdict."""
    item = c.execute(review_items.insert().values(upload_id=upload_id, kind=kind, priority=priority, state="pending",
                                                  version=1, created_at=now)).inserted_primary_key[0]
    record(c, upload_id, "model", "queued_for_review", {"kind": kind, "priority": priority}, now, item)
    return item


def _with_upload():
    """Review items with what a reviewer sees of their upload."""
    return (sa.select(review_items, uploads.c.media_type, uploads.c.decision, uploads.c.score, uploads.c.filename,
                      uploads.c.meta.label("metadata"), uploads.c.created_at.label("uploaded_at"))
            .join(uploads, uploads.c.id == review_items.c.upload_id))


def narrowed(media_type: str | None = None, decision: str | None = None, channel: str | None = None,
             waited_s: float | None = None) -> sa.ColumnElement[bool]:
    """Items the queue's filters keep: their upload's media type, model decision, `channel` in its metadata,
    and how long they have waited at least (None: any)."""
    upload = []
    if media_type:
        upload.append(uploads.c.media_type == media_type)
    if decision:
        upload.append(uploads.c.decision == decision)
    if channel:
        upload.append(uploads.c.meta["channel"].as_string() == channel)
    cond = review_items.c.upload_id.in_(sa.select(uploads.c.id).where(*upload)) if upload else sa.true()
    if waited_s:
        cond = cond & (review_items.c.created_at <= time.time() - waited_s)
    return cond


def _held(item_id: int, reviewer: str, version: int, now: float):
    """The item is claimed by `reviewer` at `version`, its lease still running."""
    return ((review_items.c.id == item_id) & (review_items.c.version == version) & (review_items.c.state == "claimed")
            & (review_items.c.reviewer == reviewer) & (review_items.c.lease_until >= now))


def _item(c: sa.Connection, item_id: int) -> dict:
    return row(c.execute(sa.select(review_items).where(review_items.c.id == item_id)).first())


class ReviewItems(Repository):
    def items(self, state: str, limit: int = 100, offset: int = 0, reviewer: str | None = None,
              senior: bool = True, keep: sa.ColumnElement[bool] = sa.true()) -> list[dict]:
        """Items in `state` with what a reviewer sees of their upload; `reviewer`: only theirs; escalations
        only for a `senior`; `keep`: the queue's filters (`narrowed`)."""
        now = time.time()
        cond = (review_items.c.state == state) & (sa.true() if senior else review_items.c.kind != "escalation")
        if state == "pending":  # an expired claim is pending again
            cond = cond | ((review_items.c.state == "claimed") & (review_items.c.lease_until < now)
                           & (sa.true() if senior else review_items.c.kind != "escalation"))
        elif state == "claimed":
            cond = cond & (review_items.c.lease_until >= now)
        if reviewer is not None:
            cond = cond & (review_items.c.reviewer == reviewer)
        return self.all(_with_upload().where(cond & keep).order_by(review_items.c.priority.desc(), review_items.c.created_at)
                        .limit(limit).offset(offset))

    def count(self, state: str) -> int:
        return self.scalar(sa.select(sa.func.count()).select_from(review_items).where(review_items.c.state == state))

    def oldest_pending(self) -> float | None:
        """When the longest-waiting pending item was created."""
        return self.scalar(sa.select(sa.func.min(review_items.c.created_at)).where(review_items.c.state == "pending"))

    def get(self, item_id: int) -> dict | None:
        """An item with what a reviewer sees of its upload."""
        return self.one(_with_upload().where(review_items.c.id == item_id))

    def claim(self, reviewer: str, lease_s: float, item_id: int | None = None, senior: bool = False,
              per_media_s: float = 0.0, keep: sa.ColumnElement[bool] = sa.true()) -> dict | None:
        """The most urgent pending item that `keep` keeps (or item `item_id`, when pending), leased to `reviewer`
        for `lease_s` plus `per_media_s` per second of its media; appeals avoid who decided first; escalations
        go to a `senior` only."""
        now = time.time()
        with self.engine.begin() as c:
            avoid = sa.select(review_items.c.upload_id).where((review_items.c.reviewer == reviewer)
                                                             & (review_items.c.state == "decided"))
            q = (sa.select(review_items.c.id).where(
                ((review_items.c.state == "pending") | ((review_items.c.state == "claimed")
                                                        & (review_items.c.lease_until < now)))
                & ((review_items.c.kind != "appeal") | review_items.c.upload_id.not_in(avoid))
                & (sa.true() if senior else review_items.c.kind != "escalation")
                & ((review_items.c.id == item_id) if item_id is not None else sa.true()) & keep)
                .order_by(review_items.c.priority.desc(), review_items.c.created_at).limit(1))
            got = c.execute(skip_locked(c, q)).first()
            if got is None:
                return None
            lease_s = _lease(c, got.id, lease_s, per_media_s)
            c.execute(review_items.update().where(review_items.c.id == got.id).values(
                state="claimed", reviewer=reviewer, lease_until=now + lease_s, version=review_items.c.version + 1))
            item = _item(c, got.id)
            record(c, item["upload_id"], reviewer, "claimed", {"lease_s": lease_s}, now, item["id"])
        return self.get(item["id"])

    def decide(self, item_id: int, reviewer: str, label: str, reason: str, version: int) -> dict:
        """Record a decision on an item the reviewer holds at `version`; Conflict when stale."""
        now = time.time()
        with self.engine.begin() as c:
            kind = c.execute(sa.select(review_items.c.kind).where(review_items.c.id == item_id)).scalar()
            if label not in LABELS.get(kind, ()):
                raise Conflict(f"a {kind} item takes one of {LABELS.get(kind)}, not {label!r}")
            done = c.execute(review_items.update().where(_held(item_id, reviewer, version, now)).values(
                state="decided", label=label, reason=reason, decided_at=now, lease_until=None,
                version=review_items.c.version + 1))
            if done.rowcount != 1:
                raise Conflict(f"{STALE}: claim it again")
            item = _item(c, item_id)
            record(c, item["upload_id"], reviewer, "decided", {"label": label, "reason": reason}, now, item_id)
            if label == "escalated":  # a senior decides: a new item in their queue, the note with it
                senior = c.execute(review_items.insert().values(
                    upload_id=item["upload_id"], kind="escalation", priority=ESCALATION_PRIORITY + item["priority"],
                    state="pending", version=1, created_at=now, appeal_of=item_id)).inserted_primary_key[0]
                record(c, item["upload_id"], reviewer, "escalated", {"note": reason, "from": item_id}, now, senior)
            up = row(c.execute(sa.select(uploads).where(uploads.c.id == item["upload_id"])).first())
            if up["callback_url"]:
                event_name = "appeal.decided" if kind == "appeal" else "review.decided"
                queue_webhook(c, up, event_name, {"upload": public_upload(up), "review": public_item(item)}, now)
        return item

    def amend(self, item_id: int, reviewer: str, label: str, reason: str, version: int, window_s: float) -> dict:
        """Change a decision `reviewer` made at most `window_s` ago (the item at `version`), while nothing came
        of it yet (no escalation or appeal opened from it); the audit trail keeps what it was. Conflict when
        not theirs, stale, too late or followed up."""
        now = time.time()
        with self.engine.begin() as c:
            before = _item(c, item_id)
            if label not in LABELS.get(before["kind"], ()) or label == "escalated":
                raise Conflict(f"a decision on a {before['kind']} item is amended to one of "
                               f"{[x for x in LABELS.get(before['kind'], ()) if x != 'escalated']}, not {label!r}")
            followed = sa.select(review_items.c.id).where(review_items.c.appeal_of == item_id).exists()
            done = c.execute(review_items.update().where(
                (review_items.c.id == item_id) & (review_items.c.state == "decided") & (review_items.c.reviewer == reviewer)
                & (review_items.c.version == version) & (review_items.c.decided_at >= now - window_s)
                & (review_items.c.label != "escalated") & ~followed).values(
                label=label, reason=reason, version=review_items.c.version + 1))  # decided_at stays: the window does not restart
            if done.rowcount != 1:
                raise Conflict(f"only your own decision of the last {window_s / 60:g} minutes, at its current version, "
                               "with no escalation or appeal opened from it, can be amended")
            item = _item(c, item_id)
            record(c, item["upload_id"], reviewer, "amended", {"from": {"label": before["label"], "reason": before["reason"]},
                                                                "label": label, "reason": reason}, now, item_id)
            up = row(c.execute(sa.select(uploads).where(uploads.c.id == item["upload_id"])).first())
            if up["callback_url"]:
                queue_webhook(c, up, "review.amended", {"upload": public_upload(up), "review": public_item(item)}, now)
        return item

    def renew(self, item_id: int, reviewer: str, version: int, lease_s: float, per_media_s: float = 0.0) -> dict:
        """Extend the lease of an item the reviewer holds at `version` as `claim` sets it (the version stays);
        Conflict when stale, not theirs, or the lease already ran out."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(review_items.update().where(_held(item_id, reviewer, version, now)).values(
                lease_until=now + _lease(c, item_id, lease_s, per_media_s)))
            if done.rowcount != 1:
                raise Conflict(STALE)
        return self.get(item_id)

    def release(self, item_id: int, reviewer: str, version: int) -> dict:
        """Give back an item the reviewer holds at `version`: pending again for anyone; Conflict when stale."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(review_items.update().where(_held(item_id, reviewer, version, now)).values(
                state="pending", reviewer=None, lease_until=None, version=review_items.c.version + 1))
            if done.rowcount != 1:
                raise Conflict(STALE)
            item = _item(c, item_id)
            record(c, item["upload_id"], reviewer, "released", {}, now, item_id)
        return self.get(item_id)

    def appeal(self, upload_id: str, client: str, reason: str) -> dict:
        """The uploader contests the last decision: a new item that a different reviewer must take."""
        now = time.time()
        with self.engine.begin() as c:
            decided = c.execute(sa.select(review_items).where((review_items.c.upload_id == upload_id)
                                                              & (review_items.c.state == "decided"))
                                .order_by(review_items.c.decided_at.desc()).limit(1)).first()
            if decided is None:
                raise Conflict("nothing was decided on this upload yet: there is nothing to appeal")
            open_appeal = c.execute(sa.select(review_items.c.id).where(
                (review_items.c.upload_id == upload_id) & (review_items.c.kind == "appeal")
                & (review_items.c.state != "decided"))).first()
            if open_appeal is not None:
                raise Conflict(f"appeal {open_appeal.id} on this upload is still open")
            item = c.execute(review_items.insert().values(  # complaints come before new detections
                upload_id=upload_id, kind="appeal", priority=APPEAL_PRIORITY + decided.priority, state="pending", version=1,
                created_at=now, appeal_of=decided.id, reason=None)).inserted_primary_key[0]
            record(c, upload_id, client, "appealed", {"reason": reason, "contests": decided.id}, now, item)
            return _item(c, item)
