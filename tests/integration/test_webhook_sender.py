"""Webhook deliveries on loopback against receivers that misbehave: one that trickles its answer a byte
at a time is cut off at the delivery's deadline and delays no other receiver; one that answers without
end is never read past its headers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import sqlalchemy as sa

from serve.config import WebhookConfig
from serve.store import Store
from serve.store.tables import webhooks
from serve.store.webhooks import queue_webhook
from serve.webhooks import Sender


class Receiver:
    """A loopback HTTP receiver: reads one request per connection, then `answer(conn)`."""

    def __init__(self, answer):
        self.answer, self.requests, self.sent = answer, [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(next(v for k, v in (h.split(b": ", 1) for h in head.split(b"\r\n")[1:])
                              if k.lower() == b"content-length"))
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(time.monotonic())
            with contextlib.suppress(OSError):  # the sender hung up
                self.answer(self, conn)


def fine(r: Receiver, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def trickle(r: Receiver, conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":  # one byte a second: every read is quick
        conn.sendall(bytes([byte]))
        r.sent += 1
        time.sleep(1)


def endless(r: Receiver, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
    chunk = b"x" * (1 << 20)
    while r.sent < 1 << 34:
        conn.sendall(chunk)
        r.sent += len(chunk)


def test_a_slow_receiver_delays_only_itself_and_an_endless_answer_is_not_read(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    slow, huge, quick = Receiver(trickle), Receiver(endless), Receiver(fine)
    with store.engine.begin() as c:
        for i, r in enumerate((slow, slow, huge, quick)):  # the slow receiver's two deliveries come first
            queue_webhook(c, {"id": f"{i:032x}", "callback_url": r.url}, "upload.scored", {}, time.time() + i / 100)
    cfg = WebhookConfig(secret="s" * 20, timeout_s=5, deadline_s=3, backoff_s=60, allow_hosts=["127.0.0.1"])
    sender = Sender(cfg, store)
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while (hooks := {h["upload_id"][-1]: h for h in store.webhooks.all(sa.select(webhooks))}) and \
                not (hooks["0"]["attempts"] and hooks["2"]["state"] == "delivered" and hooks["3"]["state"] == "delivered"):
            assert time.monotonic() < deadline, hooks
            time.sleep(0.1)
    finally:
        sender.stop()
    assert quick.requests and quick.requests[0] < slow.requests[0] + 3  # while the slow one still trickled
    assert hooks["0"]["state"] == "pending" and hooks["0"]["last_error"] == "no answer within 3 s"
    # the slow receiver's second delivery waited for its first to end: one at a time per receiver
    assert all(b - a > 2.5 for a, b in zip(slow.requests, slow.requests[1:]))
    assert huge.sent < 256 << 20  # of an answer that claimed 100 GB: the sender hung up after the headers

