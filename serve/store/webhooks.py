"""Webhook deliveries: queued with the change they announce, sent (and retried) by serve/webhooks.py."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa

from serve.store.public import iso
from serve.store.tables import Repository, row, skip_locked, webhooks


def queue_webhook(c: sa.Connection, up: dict, event_name: str, payload: dict, now: float) -> None:
    """Queue an event for the upload's callback URL, in the transaction of the change it announces."""
    eid = uuid.uuid4().hex
    c.execute(webhooks.insert().values(id=eid, upload_id=up["id"], event=event_name, url=up["callback_url"],
                                       payload={"id": eid, "event": event_name, "created_at": iso(now)} | payload,
                                       state="pending", attempts=0, next_at=now))


def forget_sent(c: sa.Connection, upload_id: str) -> None:
    """Delete the upload's deliveries that were sent or given up (their payloads copy its Verdict)."""
    c.execute(webhooks.delete().where((webhooks.c.upload_id == upload_id) & (webhooks.c.state != "pending")))


class Webhooks(Repository):
    def due(self, n: int, hold_s: float) -> list[dict]:
        """Deliveries due now, held for `hold_s` so another server does not send them meanwhile."""
        now = time.time()
        with self.engine.begin() as c:
            q = (sa.select(webhooks.c.id).where((webhooks.c.state == "pending") & (webhooks.c.next_at <= now))
                 .order_by(webhooks.c.next_at).limit(n))
            ids = [r.id for r in c.execute(skip_locked(c, q))]
            if not ids:
                return []
            c.execute(webhooks.update().where(webhooks.c.id.in_(ids)).values(next_at=now + hold_s))
            return [row(r) for r in c.execute(sa.select(webhooks).where(webhooks.c.id.in_(ids)))]

    def defer(self, ids: list[str], delay_s: float) -> None:
        """Held deliveries not sent now: due again after `delay_s`, no attempt counted."""
        with self.engine.begin() as c:
            c.execute(webhooks.update().where(webhooks.c.id.in_(ids)).values(next_at=time.time() + delay_s))

    def attempted(self, hook: dict, error: str | None, max_attempts: int, backoff_s: float) -> None:
        """Record a delivery attempt (`error` None: delivered); failed ones are due again after an exponential
        backoff, up to `max_attempts`."""
        attempts = hook["attempts"] + 1
        state = "delivered" if error is None else "failed" if attempts >= max_attempts else "pending"
        with self.engine.begin() as c:
            c.execute(webhooks.update().where(webhooks.c.id == hook["id"]).values(
                state=state, attempts=attempts, last_error=error, next_at=time.time() + backoff_s * 2 ** (attempts - 1)))
