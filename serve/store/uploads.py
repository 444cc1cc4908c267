"""Uploads and their scoring jobs: claims with leases, results stored once, retention and erasure marks."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import sqlalchemy as sa

from serve.store.audit import record
from serve.store.public import public_upload
from serve.store.review import open_item, triage
from serve.store.tables import Conflict, Repository, row, skip_locked, uploads
from serve.store.webhooks import forget_sent, queue_webhook


def _get(c: sa.Connection, upload_id: str) -> dict | None:
    return row(c.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first())


def _settle(c: sa.Connection, upload_id: str, verdict: dict | None, error: dict | None, review_decisions: list[str],
            now: float, owner: str | None = None) -> bool:
    """A processing job's Verdict (or failure), its audit event, review item and webhook, in `c`'s transaction;
    False when it is not processing (or, `owner` given, not that owner's)."""
    mine = (uploads.c.id == upload_id) & (uploads.c.status == "processing")
    if owner is not None:
        mine &= uploads.c.owner == owner
    done = c.execute(uploads.update().where(mine).values(
        status="failed" if error else "scored", verdict=verdict, reason=json.dumps(error) if error else None,
        score=verdict and verdict.get("score"), decision=verdict and verdict.get("decision"),
        scored_at=now, lease_until=None))
    if done.rowcount != 1:
        return False
    up = _get(c, upload_id)
    record(c, upload_id, "model", "failed" if error else "scored",
           error or {"decision": verdict["decision"], "score": verdict["score"]}, now)
    if verdict and verdict["decision"] in review_decisions:
        open_item(c, upload_id, "detection", triage(verdict), now)
    if up["callback_url"]:
        queue_webhook(c, up, "upload.scored", {"upload": public_upload(up)}, now)
    return True


class Uploads(Repository):
    def add(self, sha256: str, size: int, media_type: str, filename: str | None, meta: dict,
            callback_url: str | None, idempotency_key: str | None, client: str | None) -> tuple[dict, bool]:
        """(upload, created). The same client's idempotency key with the same bytes is the same upload; a blank
        key is none. Clients never see each other's keys."""
        args = sha256, size, media_type, filename, meta, callback_url, (idempotency_key or "").strip() or None, client
        try:
            return self._add(*args)
        except sa.exc.IntegrityError:  # the same key arrived twice at once (PostgreSQL, read committed): the first won
            return self._add(*args)

    def _add(self, sha256: str, size: int, media_type: str, filename: str | None, meta: dict,
             callback_url: str | None, idempotency_key: str | None, client: str | None) -> tuple[dict, bool]:
        now = time.time()
        with self.engine.begin() as c:
            if idempotency_key:
                old = row(c.execute(sa.select(uploads).where((uploads.c.idempotency_key == idempotency_key)
                                                             & (uploads.c.client == client))).first())
                if old:
                    if old["sha256"] != sha256:
                        raise Conflict("Idempotency-Key was used before with different bytes")
                    return old, False
            new = dict(id=uuid.uuid4().hex, sha256=sha256, size=size, media_type=media_type, filename=filename,
                       meta=meta, callback_url=callback_url, idempotency_key=idempotency_key, client=client,
                       status="queued", attempts=0, created_at=now)
            c.execute(uploads.insert().values(**new))
            record(c, new["id"], client or "anonymous", "uploaded",
                   {"sha256": sha256, "size": size, "media_type": media_type}, now)
        return self.get(new["id"]), True

    def get(self, upload_id: str) -> dict | None:
        return self.one(sa.select(uploads).where(uploads.c.id == upload_id))

    def count(self, status: str) -> int:
        return self.scalar(sa.select(sa.func.count()).select_from(uploads).where(uploads.c.status == status))

    def claim(self, owner: str, n: int, lease_s: float, max_attempts: int) -> tuple[list[dict], list[str]]:
        """(jobs, exhausted): up to n queued jobs, or ones whose owner's lease ran out, now belong to `owner`;
        in the same transaction, jobs whose lease ran out after `max_attempts` fail (they took their owner
        down each time: an upload that kills the server process must not kill every replica in turn)."""
        now = time.time()
        expired = (uploads.c.status == "processing") & (uploads.c.lease_until < now)
        with self.engine.begin() as c:
            exhausted = [r.id for r in c.execute(skip_locked(c, sa.select(uploads.c.id).where(
                expired & (uploads.c.attempts >= max_attempts))))]
            for i in exhausted:
                _settle(c, i, None, {"type": "WorkerCrash", "reason": "worker_crash",
                                     "message": f"scoring this upload stopped its server {max_attempts} times"}, [], now)
            q = (sa.select(uploads.c.id).where((uploads.c.status == "queued") | (expired & (uploads.c.attempts < max_attempts)))
                 .order_by(uploads.c.created_at).limit(n))
            ids = [r.id for r in c.execute(skip_locked(c, q))]
            if not ids:
                return [], exhausted
            c.execute(uploads.update().where(uploads.c.id.in_(ids)).values(
                status="processing", owner=owner, lease_until=now + lease_s, attempts=uploads.c.attempts + 1))
            return [row(r) for r in c.execute(sa.select(uploads).where(uploads.c.id.in_(ids)))], exhausted

    def renew(self, owner: str, ids: list[str], lease_s: float) -> None:
        """Extend `owner`'s leases on these jobs."""
        if ids:
            with self.engine.begin() as c:
                c.execute(uploads.update().where(uploads.c.id.in_(ids) & (uploads.c.owner == owner)
                                                 & (uploads.c.status == "processing"))
                          .values(lease_until=time.time() + lease_s))

    def finish(self, upload_id: str, owner: str, verdict: dict | None, error: dict | None,
               review_decisions: list[str]) -> bool:
        """Store a job's Verdict (or failure) once, with its audit event, review item and webhook in the same
        transaction: False when another owner took it over meanwhile."""
        now = time.time()
        with self.engine.begin() as c:
            return _settle(c, upload_id, verdict, error, review_decisions, now, owner)

    def release(self, upload_id: str, owner: str) -> None:
        """Give a claimed job back to the queue (its worker died with it; it counts as an attempt)."""
        with self.engine.begin() as c:
            c.execute(uploads.update().where((uploads.c.id == upload_id) & (uploads.c.owner == owner)
                                             & (uploads.c.status == "processing")).values(status="queued", owner=None))

    def expired(self, what: str, before: float) -> list[dict]:
        """Finished uploads created before `before` whose `what` (bytes, crops, verdict) is still kept."""
        col = uploads.c[f"{what}_erased_at"]
        return self.all(sa.select(uploads).where((uploads.c.created_at < before) & col.is_(None)
                                                 & uploads.c.status.in_(("scored", "failed"))))

    def mark_erased(self, upload_id: str, what: list[str], actor: str, why: str) -> list[str]:
        """Record that `what` of an upload is gone (once each); returns what was newly erased."""
        now = time.time()
        with self.engine.begin() as c:
            up = _get(c, upload_id)
            fresh = [w for w in what if up[f"{w}_erased_at"] is None]
            if not fresh:
                return []
            values: dict[str, Any] = {f"{w}_erased_at": now for w in fresh}
            if "verdict" in fresh:  # faces' boxes and scores are personal data too; webhook copies go with them
                values |= {"verdict": None}
                forget_sent(c, upload_id)
            if up["status"] in ("queued", "processing") and "bytes" in fresh:
                values |= {"status": "failed", "reason": json.dumps({"type": "Erased", "reason": "erased",
                                                                    "message": why}), "lease_until": None}
            c.execute(uploads.update().where(uploads.c.id == upload_id).values(**values))
            record(c, upload_id, actor, "erased", {"what": fresh, "why": why}, now)
        return fresh

    def bytes_needed(self, sha256: str, but: str) -> bool:
        """Whether another upload of the same bytes still keeps them (the store holds one copy)."""
        return self.one(sa.select(uploads.c.id).where((uploads.c.sha256 == sha256) & (uploads.c.id != but)
                                                      & uploads.c.bytes_erased_at.is_(None)).limit(1)) is not None
