"""The audit trail: append-only, one event per thing that happened to an upload or review item."""

from __future__ import annotations

import sqlalchemy as sa

from serve.store.tables import Repository, audit_events


def record(c: sa.Connection, upload_id: str, actor: str, action: str, detail: dict, now: float,
           item_id: int | None = None) -> None:
    """Append an event, in the transaction of the change it records."""
    c.execute(audit_events.insert().values(upload_id=upload_id, item_id=item_id, actor=actor, action=action,
                                           detail=detail, at=now))


class AuditLog(Repository):
    def add(self, actor: str, action: str, detail: dict, now: float) -> None:
        """An event of no one upload (a dataset export), in its own transaction."""
        with self.engine.begin() as c:
            record(c, None, actor, action, detail, now)

    def events(self, upload_id: str | None = None, item_id: int | None = None) -> list[dict]:
        """An item's events (by `item_id`), else an upload's, oldest first."""
        cond = audit_events.c.item_id == item_id if item_id is not None else audit_events.c.upload_id == upload_id
        return self.all(sa.select(audit_events).where(cond).order_by(audit_events.c.id))
