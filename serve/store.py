"""Jobs, Verdicts, the review queue, audit events, API keys and webhook deliveries, in SQL.

SQLite (WAL) by default, PostgreSQL by `database_url`; the schema comes from the Alembic
migrations in serve/migrations. Work is claimed with `FOR UPDATE SKIP LOCKED` where the database
has it (PostgreSQL), so several servers share one queue; SQLite serialises writers instead.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy import event

from serve.config import Role

metadata = sa.MetaData()

uploads = sa.Table(
    "uploads", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # image | video | audio, from the bytes
    sa.Column("filename", sa.String(255)),  # as the client named it, informational only
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("callback_url", sa.String(2048)),
    sa.Column("idempotency_key", sa.String(255)),  # unique per client, below
    sa.Column("client", sa.String(64)),  # the API key's name that submitted it
    sa.Column("status", sa.String(16), nullable=False, index=True),  # queued processing scored failed
    sa.Column("reason", sa.Text),
    sa.Column("verdict", sa.JSON),
    sa.Column("score", sa.Float),
    sa.Column("decision", sa.String(16)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("scored_at", sa.Float),
    sa.Column("bytes_erased_at", sa.Float),  # retention or erasure: what is gone, and since when
    sa.Column("crops_erased_at", sa.Float),
    sa.Column("verdict_erased_at", sa.Float),
    sa.UniqueConstraint("client", "idempotency_key", name="uploads_client_idempotency_key_key"),
)

review_items = sa.Table(
    "review_items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.String(32), sa.ForeignKey("uploads.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # detection | appeal
    sa.Column("priority", sa.Float, nullable=False),  # the upload's score (appeals: 1 + it): higher first
    sa.Column("state", sa.String(16), nullable=False, index=True),  # pending claimed decided
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("reviewer", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("label", sa.String(32)),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float),
    sa.Column("appeal_of", sa.Integer),  # appeals: the decided item contested
)

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.String(32), index=True),
    sa.Column("item_id", sa.Integer, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("roles", sa.String(64), nullable=False),  # comma-separated
    sa.Column("created_at", sa.Float, nullable=False),
)

webhooks = sa.Table(
    "webhooks", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the event id receivers de-duplicate on
    sa.Column("upload_id", sa.String(32), nullable=False, index=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # pending delivered failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
)

ROLES = get_args(Role)
LABELS = {"detection": ("confirmed_fake", "cleared", "escalated"), "appeal": ("upheld", "overturned")}


class Conflict(Exception):
    """A request that contradicts the stored state (stale version, reused idempotency key)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _row(r) -> dict | None:
    return None if r is None else dict(r._mapping)


def _with_upload():
    """Review items with what a reviewer sees of their upload."""
    return (sa.select(review_items, uploads.c.kind.label("media_type"), uploads.c.decision, uploads.c.score,
                      uploads.c.filename, uploads.c.meta.label("metadata"), uploads.c.created_at.label("uploaded_at"))
            .join(uploads, uploads.c.id == review_items.c.upload_id))


class Store:
    def __init__(self, url: str):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, pool_pre_ping=True,
                                       connect_args={"check_same_thread": False, "timeout": 30} if url.startswith("sqlite") else {})
        self.sqlite = self.engine.dialect.name == "sqlite"
        if self.sqlite:
            @event.listens_for(self.engine, "connect")
            def _wal(conn, _):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.isolation_level = None  # transactions begin explicitly (below), IMMEDIATE: one writer

            @event.listens_for(self.engine, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    def migrate(self) -> None:
        """Bring the schema to the newest migration (serialised across servers on PostgreSQL)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self.engine.begin() as conn:
            if not self.sqlite:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7211)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _skip_locked(self, query):
        return query if self.sqlite else query.with_for_update(skip_locked=True)

    # uploads and jobs

    def add_upload(self, sha256: str, size: int, kind: str, filename: str | None, meta: dict, callback_url: str | None,
                   idempotency_key: str | None, client: str | None) -> tuple[dict, bool]:
        """(upload, created). The same client's idempotency key with the same bytes is the same upload; a blank
        key is none. Clients never see each other's keys."""
        idempotency_key = (idempotency_key or "").strip() or None
        try:
            return self._add_upload(sha256, size, kind, filename, meta, callback_url, idempotency_key, client)
        except sa.exc.IntegrityError:  # the same key arrived twice at once (PostgreSQL, read committed): the first won
            return self._add_upload(sha256, size, kind, filename, meta, callback_url, idempotency_key, client)

    def _add_upload(self, sha256: str, size: int, kind: str, filename: str | None, meta: dict,
                    callback_url: str | None, idempotency_key: str | None, client: str | None) -> tuple[dict, bool]:
        now = time.time()
        with self.engine.begin() as c:
            if idempotency_key:
                old = _row(c.execute(sa.select(uploads).where((uploads.c.idempotency_key == idempotency_key)
                                                              & (uploads.c.client == client))).first())
                if old:
                    if old["sha256"] != sha256:
                        raise Conflict("Idempotency-Key was used before with different bytes")
                    return old, False
            row = dict(id=uuid.uuid4().hex, sha256=sha256, size=size, kind=kind, filename=filename, meta=meta,
                       callback_url=callback_url, idempotency_key=idempotency_key, client=client, status="queued",
                       attempts=0, created_at=now)
            c.execute(uploads.insert().values(**row))
            c.execute(audit_events.insert().values(upload_id=row["id"], actor=client or "anonymous", action="uploaded",
                                                   detail={"sha256": sha256, "size": size, "kind": kind}, at=now))
        return self.upload(row["id"]), True

    def upload(self, upload_id: str) -> dict | None:
        with self.engine.connect() as c:
            return _row(c.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first())

    def count(self, status: str) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(uploads).where(uploads.c.status == status)).scalar()

    def claim_jobs(self, owner: str, n: int, lease_s: float) -> list[dict]:
        """Up to n queued jobs (or ones whose owner's lease ran out) now belong to `owner`."""
        now = time.time()
        with self.engine.begin() as c:
            q = (sa.select(uploads.c.id).where((uploads.c.status == "queued") | (
                (uploads.c.status == "processing") & (uploads.c.lease_until < now)))
                .order_by(uploads.c.created_at).limit(n))
            ids = [r.id for r in c.execute(self._skip_locked(q))]
            if not ids:
                return []
            c.execute(uploads.update().where(uploads.c.id.in_(ids)).values(
                status="processing", owner=owner, lease_until=now + lease_s, attempts=uploads.c.attempts + 1))
            return [_row(r) for r in c.execute(sa.select(uploads).where(uploads.c.id.in_(ids)))]

    def renew_jobs(self, owner: str, ids: list[str], lease_s: float) -> None:
        if ids:
            with self.engine.begin() as c:
                c.execute(uploads.update().where(uploads.c.id.in_(ids) & (uploads.c.owner == owner)
                                                 & (uploads.c.status == "processing"))
                          .values(lease_until=time.time() + lease_s))

    def finish_job(self, upload_id: str, owner: str, verdict: dict | None, error: dict | None,
                   review_decisions: list[str]) -> bool:
        """Store a job's Verdict (or failure) once: False when another owner took it over meanwhile."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(uploads.update().where((uploads.c.id == upload_id) & (uploads.c.owner == owner)
                                                    & (uploads.c.status == "processing")).values(
                status="failed" if error else "scored", verdict=verdict, reason=json.dumps(error) if error else None,
                score=verdict and verdict.get("score"), decision=verdict and verdict.get("decision"),
                scored_at=now, lease_until=None))
            if done.rowcount != 1:
                return False
            up = _row(c.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first())
            c.execute(audit_events.insert().values(
                upload_id=upload_id, actor="model", action="failed" if error else "scored",
                detail=error or {"decision": verdict["decision"], "score": verdict["score"]}, at=now))
            if verdict and verdict["decision"] in review_decisions:
                self._open_item(c, upload_id, "detection", verdict["score"] or 0.0, now)
            if up["callback_url"]:
                self._webhook(c, up, "upload.scored", {"upload": public_upload(up)}, now)
        return True

    def fail_exhausted(self, max_attempts: int) -> list[str]:
        """Jobs that keep killing their worker (attempts used up, lease gone) fail with that reason."""
        now = time.time()
        with self.engine.begin() as c:
            q = sa.select(uploads.c.id).where((uploads.c.status == "processing") & (uploads.c.lease_until < now)
                                              & (uploads.c.attempts >= max_attempts))
            ids = [r.id for r in c.execute(self._skip_locked(q))]
            for i in ids:
                c.execute(uploads.update().where(uploads.c.id == i).values(
                    status="failed", reason=json.dumps({"type": "WorkerCrash", "reason": "worker_crash",
                                                        "message": f"scoring stopped its worker {max_attempts} times"}),
                    scored_at=now, lease_until=None))
        return ids

    def release_job(self, upload_id: str, owner: str) -> None:
        """Give a claimed job back to the queue (its worker died with it; it counts as an attempt)."""
        with self.engine.begin() as c:
            c.execute(uploads.update().where((uploads.c.id == upload_id) & (uploads.c.owner == owner)
                                             & (uploads.c.status == "processing")).values(status="queued", owner=None))

    # review queue

    def _open_item(self, c, upload_id: str, kind: str, priority: float, now: float) -> int:
        item = c.execute(review_items.insert().values(upload_id=upload_id, kind=kind, priority=priority, state="pending",
                                                      version=1, created_at=now)).inserted_primary_key[0]
        c.execute(audit_events.insert().values(upload_id=upload_id, item_id=item, actor="model", action="queued_for_review",
                                               detail={"kind": kind, "priority": priority}, at=now))
        return item

    def items(self, state: str, limit: int = 100, offset: int = 0, reviewer: str | None = None) -> list[dict]:
        """Items in `state` with what a reviewer sees of their upload; `reviewer`: only theirs."""
        now = time.time()
        cond = review_items.c.state == state
        if state == "pending":  # an expired claim is pending again
            cond = cond | ((review_items.c.state == "claimed") & (review_items.c.lease_until < now))
        elif state == "claimed":
            cond = cond & (review_items.c.lease_until >= now)
        if reviewer is not None:
            cond = cond & (review_items.c.reviewer == reviewer)
        q = (_with_upload().where(cond).order_by(review_items.c.priority.desc(), review_items.c.created_at).limit(limit).offset(offset))
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def review_count(self, state: str) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(review_items)
                             .where(review_items.c.state == state)).scalar()

    def oldest_pending(self) -> float | None:
        """When the longest-waiting pending review item was created."""
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.min(review_items.c.created_at))
                             .where(review_items.c.state == "pending")).scalar()

    def item(self, item_id: int) -> dict | None:
        with self.engine.connect() as c:
            return _row(c.execute(_with_upload().where(review_items.c.id == item_id)).first())

    def claim_item(self, reviewer: str, lease_s: float, item_id: int | None = None) -> dict | None:
        """The most urgent pending item (or item `item_id`, when pending), leased to `reviewer`; appeals
        avoid who decided first."""
        now = time.time()
        with self.engine.begin() as c:
            avoid = sa.select(review_items.c.upload_id).where((review_items.c.reviewer == reviewer)
                                                             & (review_items.c.state == "decided"))
            q = (sa.select(review_items.c.id).where(
                ((review_items.c.state == "pending") | ((review_items.c.state == "claimed")
                                                        & (review_items.c.lease_until < now)))
                & ((review_items.c.kind != "appeal") | review_items.c.upload_id.not_in(avoid))
                & ((review_items.c.id == item_id) if item_id is not None else sa.true()))
                .order_by(review_items.c.priority.desc(), review_items.c.created_at).limit(1))
            got = c.execute(self._skip_locked(q)).first()
            if got is None:
                return None
            c.execute(review_items.update().where(review_items.c.id == got.id).values(
                state="claimed", reviewer=reviewer, lease_until=now + lease_s, version=review_items.c.version + 1))
            item = _row(c.execute(sa.select(review_items).where(review_items.c.id == got.id)).first())
            c.execute(audit_events.insert().values(upload_id=item["upload_id"], item_id=item["id"], actor=reviewer,
                                                   action="claimed", detail={"lease_s": lease_s}, at=now))
        return self.item(item["id"])

    def decide(self, item_id: int, reviewer: str, label: str, reason: str, version: int) -> dict:
        """Record a decision on an item the reviewer holds at `version`; Conflict when stale."""
        now = time.time()
        with self.engine.begin() as c:
            kind = c.execute(sa.select(review_items.c.kind).where(review_items.c.id == item_id)).scalar()
            if label not in LABELS.get(kind, ()):
                raise Conflict(f"a {kind} item takes one of {LABELS.get(kind)}, not {label!r}")
            done = c.execute(review_items.update().where(
                (review_items.c.id == item_id) & (review_items.c.version == version)
                & (review_items.c.state == "claimed") & (review_items.c.reviewer == reviewer)
                & (review_items.c.lease_until >= now)).values(
                state="decided", label=label, reason=reason, decided_at=now, lease_until=None,
                version=review_items.c.version + 1))
            if done.rowcount != 1:
                raise Conflict("the item changed, is not claimed by you, or its lease ran out: claim it again")
            item = _row(c.execute(sa.select(review_items).where(review_items.c.id == item_id)).first())
            c.execute(audit_events.insert().values(upload_id=item["upload_id"], item_id=item_id, actor=reviewer,
                                                   action="decided", detail={"label": label, "reason": reason}, at=now))
            up = _row(c.execute(sa.select(uploads).where(uploads.c.id == item["upload_id"])).first())
            if up["callback_url"]:
                event_name = "appeal.decided" if kind == "appeal" else "review.decided"
                self._webhook(c, up, event_name, {"upload": public_upload(up), "review": public_item(item)}, now)
        return item

    def release(self, item_id: int, reviewer: str, version: int) -> dict:
        """Give back an item the reviewer holds at `version`: pending again for anyone; Conflict when stale."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(review_items.update().where(
                (review_items.c.id == item_id) & (review_items.c.version == version)
                & (review_items.c.state == "claimed") & (review_items.c.reviewer == reviewer)
                & (review_items.c.lease_until >= now)).values(
                state="pending", reviewer=None, lease_until=None, version=review_items.c.version + 1))
            if done.rowcount != 1:
                raise Conflict("the item changed, is not claimed by you, or its lease ran out")
            item = _row(c.execute(sa.select(review_items).where(review_items.c.id == item_id)).first())
            c.execute(audit_events.insert().values(upload_id=item["upload_id"], item_id=item_id, actor=reviewer,
                                                   action="released", detail={}, at=now))
        return self.item(item_id)

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
                upload_id=upload_id, kind="appeal", priority=1.0 + decided.priority, state="pending", version=1,
                created_at=now, appeal_of=decided.id, reason=None)).inserted_primary_key[0]
            c.execute(audit_events.insert().values(upload_id=upload_id, item_id=item, actor=client, action="appealed",
                                                   detail={"reason": reason, "contests": decided.id}, at=now))
            return _row(c.execute(sa.select(review_items).where(review_items.c.id == item)).first())

    def audit(self, upload_id: str | None = None, item_id: int | None = None) -> list[dict]:
        cond = audit_events.c.item_id == item_id if item_id is not None else audit_events.c.upload_id == upload_id
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(sa.select(audit_events).where(cond).order_by(audit_events.c.id))]

    # retention and erasure

    def expired(self, what: str, before: float) -> list[dict]:
        """Finished uploads created before `before` whose `what` (bytes, crops, verdict) is still kept."""
        col = uploads.c[f"{what}_erased_at"]
        q = sa.select(uploads).where((uploads.c.created_at < before) & col.is_(None)
                                     & uploads.c.status.in_(("scored", "failed")))
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def mark_erased(self, upload_id: str, what: list[str], actor: str, why: str) -> list[str]:
        """Record that `what` of an upload is gone (once each); returns what was newly erased."""
        now = time.time()
        with self.engine.begin() as c:
            up = _row(c.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first())
            fresh = [w for w in what if up[f"{w}_erased_at"] is None]
            if not fresh:
                return []
            values: dict[str, Any] = {f"{w}_erased_at": now for w in fresh}
            if "verdict" in fresh:  # faces' boxes and scores are personal data too; webhook copies go with them
                values |= {"verdict": None}
                c.execute(webhooks.delete().where((webhooks.c.upload_id == upload_id) & (webhooks.c.state != "pending")))
            if up["status"] in ("queued", "processing") and "bytes" in fresh:
                values |= {"status": "failed", "reason": json.dumps({"type": "Erased", "reason": "erased",
                                                                    "message": why}), "lease_until": None}
            c.execute(uploads.update().where(uploads.c.id == upload_id).values(**values))
            c.execute(audit_events.insert().values(upload_id=upload_id, actor=actor, action="erased",
                                                   detail={"what": fresh, "why": why}, at=now))
        return fresh

    def bytes_needed(self, sha256: str, but: str) -> bool:
        """Whether another upload of the same bytes still keeps them (the store holds one copy)."""
        with self.engine.connect() as c:
            return c.execute(sa.select(uploads.c.id).where((uploads.c.sha256 == sha256) & (uploads.c.id != but)
                                                           & uploads.c.bytes_erased_at.is_(None)).limit(1)).first() is not None

    # API keys

    def add_key(self, name: str, roles: list[str], key: str | None = None) -> str:
        """Store a key's hash with its roles (replacing one of that name); returns the plain key."""
        key = key or secrets.token_urlsafe(24)
        with self.engine.begin() as c:
            c.execute(api_keys.delete().where(api_keys.c.name == name))
            c.execute(api_keys.insert().values(name=name, key_hash=hash_key(key), roles=",".join(roles), created_at=time.time()))
        return key

    def key_of(self, name: str) -> tuple[str, set[str]] | None:
        """A key's stored hash and roles, by its name."""
        with self.engine.connect() as c:
            r = c.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
        return None if r is None else (r.key_hash, set(r.roles.split(",")))

    def key_count(self) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar()

    def key_roles(self, key: str) -> tuple[str, set[str]] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key))).first()
        return None if r is None else (r.name, set(r.roles.split(",")))

    # webhooks

    def _webhook(self, c, up: dict, event_name: str, payload: dict, now: float) -> None:
        eid = uuid.uuid4().hex
        c.execute(webhooks.insert().values(id=eid, upload_id=up["id"], event=event_name, url=up["callback_url"],
                                           payload={"id": eid, "event": event_name, "created_at": iso(now)} | payload,
                                           state="pending", attempts=0, next_at=now))

    def due_webhooks(self, n: int, hold_s: float) -> list[dict]:
        """Deliveries due now, held for `hold_s` so another server does not send them meanwhile."""
        now = time.time()
        with self.engine.begin() as c:
            q = (sa.select(webhooks.c.id).where((webhooks.c.state == "pending") & (webhooks.c.next_at <= now))
                 .order_by(webhooks.c.next_at).limit(n))
            ids = [r.id for r in c.execute(self._skip_locked(q))]
            if not ids:
                return []
            c.execute(webhooks.update().where(webhooks.c.id.in_(ids)).values(next_at=now + hold_s))
            return [_row(r) for r in c.execute(sa.select(webhooks).where(webhooks.c.id.in_(ids)))]

    def webhook_result(self, hook: dict, error: str | None, max_attempts: int, backoff_s: float) -> None:
        attempts = hook["attempts"] + 1
        state = "delivered" if error is None else "failed" if attempts >= max_attempts else "pending"
        with self.engine.begin() as c:
            c.execute(webhooks.update().where(webhooks.c.id == hook["id"]).values(
                state=state, attempts=attempts, last_error=error, next_at=time.time() + backoff_s * 2 ** (attempts - 1)))

    def webhooks_for(self, upload_id: str) -> list[dict]:
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(sa.select(webhooks).where(webhooks.c.upload_id == upload_id))]


def iso(ts: float | None) -> str | None:
    """A stored Unix time as the API shows times: ISO 8601, UTC."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def public_upload(up: dict) -> dict[str, Any]:
    """An upload as the API shows it."""
    out = {"id": up["id"], "status": up["status"], "sha256": up["sha256"], "media_type": up["kind"],
           "size": up["size"], "metadata": up["meta"], "created_at": iso(up["created_at"]),
           "scored_at": iso(up["scored_at"]), "verdict": up["verdict"]}
    if up["status"] == "failed" and up["reason"]:
        out["error"] = json.loads(up["reason"])
    return out


TIMES = {"lease_until", "created_at", "decided_at", "uploaded_at", "at"}  # stored as Unix times


def public_event(event: dict) -> dict[str, Any]:
    """An audit event as the API shows it."""
    return {k: iso(v) if k in TIMES else v for k, v in event.items()}


def public_item(item: dict) -> dict[str, Any]:
    keys = ("id", "upload_id", "kind", "priority", "state", "version", "reviewer", "lease_until", "label", "reason",
            "created_at", "decided_at", "media_type", "decision", "appeal_of", "score", "filename", "metadata",
            "uploaded_at")
    return {k: iso(item[k]) if k in TIMES else item[k] for k in keys if k in item}

