"""The tables (as the migrations in serve/migrations leave them) and what every repository shares."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

uploads = sa.Table(
    "uploads", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("media_type", sa.String(16), nullable=False),  # image | video | audio, from the bytes
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
    sa.Column("expires_at", sa.Float),  # None: never
    sa.Column("revoked_at", sa.Float),
)

models = sa.Table(  # the model registry: every bundle used or proposed
    "models", metadata,
    sa.Column("version", sa.String(32), primary_key=True),  # the bundle's weights hash
    sa.Column("modality", sa.String(16), nullable=False),  # visual | audio
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),  # the bundle folder as every server reads it ("starter")
    sa.Column("parent", sa.String(32)),  # the version it replaced or was fine-tuned from
    sa.Column("data", sa.JSON, nullable=False),  # what it learned from (the bundle's training record)
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # live | shadow | candidate | retired
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("changed_at", sa.Float, nullable=False),
)

shadow_scores = sa.Table(  # a shadow model's score of an upload: recorded, never deciding, routing or notifying
    "shadow_scores", metadata,
    sa.Column("upload_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("score", sa.Float),  # None: nothing of that modality in the upload
    sa.Column("decision", sa.String(16)),  # by the shadow model's own thresholds
    sa.Column("at", sa.Float, nullable=False),
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


READ_ONLY = "store_read_only"  # a connection's execution option: it only reads (SQLite: no writer lock)


class Conflict(Exception):
    """A request that contradicts the stored state (stale version, reused idempotency key): the API answers 409."""


class Missing(Exception):
    """A request naming something the store does not hold (a model version): the API answers 404."""


def row(r) -> dict | None:
    return None if r is None else dict(r._mapping)


def skip_locked(c: sa.Connection, query):
    """`query` locking the rows it selects and passing over rows locked by others (PostgreSQL); SQLite has one
    writer at a time anyway."""
    return query if c.dialect.name == "sqlite" else query.with_for_update(skip_locked=True)


class Repository:
    """One table's queries over the store's engine; writes that span tables run in one transaction through
    the module-level helpers that take its connection."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def reading(self) -> sa.Connection:
        """A connection for reads only: on SQLite its transaction takes no writer lock."""
        return self.engine.connect().execution_options(**{READ_ONLY: True})

    def one(self, query) -> dict | None:
        with self.reading() as c:
            return row(c.execute(query).first())

    def all(self, query) -> list[dict]:
        with self.reading() as c:
            return [row(r) for r in c.execute(query)]

    def scalar(self, query):
        with self.reading() as c:
            return c.execute(query).scalar()
