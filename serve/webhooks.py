"""Signed webhooks: deliveries live in the store, so a restart sends what is still due.

Each POST carries `X-Event-Id` (receivers de-duplicate on it), `X-Event`, `X-Timestamp` and
`X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the shared secret>`.
Failed attempts are retried with exponential backoff up to `max_attempts`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time

import httpx

from serve import metrics
from serve.config import WebhookConfig
from serve.store import Store

log = logging.getLogger("serve.webhooks")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Sender:
    def __init__(self, cfg: WebhookConfig, store: Store):
        self.cfg, self.store = cfg, store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="webhooks")
        self._client = httpx.Client(timeout=cfg.timeout_s, follow_redirects=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                due = self.store.due_webhooks(16, hold_s=2 * self.cfg.timeout_s)
                for hook in due:
                    self.store.webhook_result(hook, self._send(hook), self.cfg.max_attempts, self.cfg.backoff_s)
            except Exception:
                log.exception("webhook loop")
                due = []
            if not due:
                self._stop.wait(0.25)

    def _send(self, hook: dict) -> str | None:
        """None when delivered, else why not."""
        body = json.dumps(hook["payload"], separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Event-Id": hook["id"], "X-Event": hook["event"],
                   "X-Timestamp": ts, "X-Signature": sign(self.cfg.secret, ts, body)}
        try:
            r = self._client.post(hook["url"], content=body, headers=headers)
            error = None if r.status_code < 300 else f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        metrics.WEBHOOKS.labels("delivered" if error is None else "failed").inc()
        return error
