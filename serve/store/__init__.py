"""Jobs, Verdicts, the review queue, audit events, API keys, webhook deliveries and the model registry, in
SQL: a repository per table (`store.uploads`, `store.review`, `store.audit`, `store.keys`, `store.webhooks`,
`store.models`).

SQLite (WAL) by default, PostgreSQL by `database_url`; the schema comes from the Alembic
migrations in serve/migrations. Work is claimed with `FOR UPDATE SKIP LOCKED` where the database
has it (PostgreSQL), so several servers share one queue; SQLite serialises writers instead.
A change that spans tables (a Verdict stored, its review item, audit event and webhook) is one
transaction: the repositories hand its connection to each other's module-level helpers.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from serve.store.audit import AuditLog
from serve.store.keys import ApiKeys
from serve.store.models import Models
from serve.store.tables import READ_ONLY
from serve.store.review import ReviewItems
from serve.store.uploads import Uploads
from serve.store.webhooks import Webhooks

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class Store:
    """The database: one engine, and a repository per table over it."""

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
            def _begin(conn):  # a write takes the writer lock at once; a read (WAL) takes none
                conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")
        self.uploads = Uploads(self.engine)
        self.review = ReviewItems(self.engine)
        self.audit = AuditLog(self.engine)
        self.keys = ApiKeys(self.engine)
        self.webhooks = Webhooks(self.engine)
        self.models = Models(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (serialised across servers on PostgreSQL)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if not self.sqlite:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7211)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
