"""Signed webhooks: deliveries live in the store, so a restart sends what is still due.

Each POST carries `X-Event-Id` (receivers de-duplicate on it), `X-Event`, `X-Timestamp` and
`X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the shared secret>`.
Failed attempts are retried with exponential backoff up to `max_attempts`. Up to `concurrency`
deliveries run at once, one per receiver (host and port), each within `deadline_s` from connecting
to the status line: a slow or trickling receiver delays only its own deliveries. Only the status
line and headers of an answer are read, never its body.

Callbacks reach public addresses only: a URL with credentials, or a host that resolves to a
loopback, private, link-local, multicast or reserved address, is refused at upload and again at
every delivery, which connects to the address it checked; redirects are not followed. Hosts named
in `allow_hosts` (tests, on-premise receivers) may resolve to any address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Collection

import httpx

from serve import metrics
from serve.config import WebhookConfig
from serve.store import Store

log = logging.getLogger("serve.webhooks")


class Refused(ValueError):
    """A callback URL that is never delivered to."""


def address(url: str, allow_hosts: Collection[str]) -> str:
    """The address to deliver a callback to, checked; Refused for credentials in the URL, a host that
    does not resolve, or one with any non-public address (unless `allow_hosts` names it)."""
    u = httpx.URL(url)
    if u.userinfo:
        raise Refused("callback_url must not carry credentials")
    try:
        found = socket.getaddrinfo(u.host, u.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"the callback host {u.host} does not resolve") from None
    ips = [ipaddress.ip_address(info[4][0]) for info in found]
    if u.host not in allow_hosts and not all(public(ip) for ip in ips):
        raise Refused(f"the callback host {u.host} has a loopback, private or otherwise non-public address")
    return str(ips[0])


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REFUSED = [ipaddress.ip_network(n) for n in ("::ffff:0:0:0/96", "64:ff9b:1::/48")]  # IPv4-translated, local NAT64


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, not multicast, and so is every IPv4 address an IPv6 one carries: mapped, compatible,
    6to4, Teredo (server and client) and NAT64 addresses reach IPv4 hosts, and `is_global` looks
    only at the IPv6 range (True for ::/96, 64:ff9b::/96 and 2002::/16)."""
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 4:
        return True
    if any(ip in net for net in _REFUSED):
        return False
    inner = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64, or IPv4-compatible (::a.b.c.d)
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(public(v4) for v4 in inner if v4 is not None)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Sender:
    """A thread running the deliveries' event loop."""

    def __init__(self, cfg: WebhookConfig, store: Store):
        self.cfg, self.store = cfg, store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True, name="webhooks")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()  # deliveries under way are dropped: held, they are due again after `hold_s`
        self._thread.join(timeout=10)

    async def _loop(self) -> None:
        busy: dict[str, asyncio.Task] = {}  # receiver (host:port) -> its delivery under way
        hold_s = 2 * self.cfg.deadline_s  # a held delivery is due again after this (its server died)
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s, follow_redirects=False) as client:
            while not self._stop.is_set():
                due = []
                try:
                    free = self.cfg.concurrency - len(busy)
                    due = await asyncio.to_thread(self.store.webhooks.due, free, hold_s) if free > 0 else []
                    later = []
                    for hook in due:
                        receiver = httpx.URL(hook["url"]).netloc.decode()
                        if receiver in busy:
                            later.append(hook["id"])
                        else:
                            busy[receiver] = asyncio.create_task(self._deliver(client, hook))
                            busy[receiver].add_done_callback(lambda _, r=receiver: busy.pop(r, None))
                    if later:  # their receiver is busy: due again shortly, no attempt counted
                        await asyncio.to_thread(self.store.webhooks.defer, later, 0.25)
                except Exception:
                    log.exception("webhook loop")
                if not due or len(busy) >= self.cfg.concurrency:
                    await asyncio.sleep(0.25)

    async def _deliver(self, client: httpx.AsyncClient, hook: dict) -> None:
        try:
            error = await asyncio.wait_for(self._send(client, hook), self.cfg.deadline_s)
        except TimeoutError:
            error = f"no answer within {self.cfg.deadline_s:g} s"
        metrics.WEBHOOKS.labels("delivered" if error is None else "failed").inc()
        try:
            await asyncio.to_thread(self.store.webhooks.attempted, hook, error, self.cfg.max_attempts, self.cfg.backoff_s)
        except Exception:  # held, it is due again after hold_s
            log.exception("recording webhook %s", hook["id"])

    async def _send(self, client: httpx.AsyncClient, hook: dict) -> str | None:
        """None when delivered, else why not."""
        body = json.dumps(hook["payload"], separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Event-Id": hook["id"], "X-Event": hook["event"],
                   "X-Timestamp": ts, "X-Signature": sign(self.cfg.secret, ts, body)}
        url = httpx.URL(hook["url"])
        try:  # to the address checked, named as the URL names it (Host header, TLS server name)
            checked = await asyncio.to_thread(address, hook["url"], self.cfg.allow_hosts)
            request = client.build_request("POST", url.copy_with(host=checked), content=body,
                                           headers=headers | {"Host": url.netloc.decode()},
                                           extensions={"sni_hostname": url.host})
            response = await client.send(request, stream=True)  # the status line and headers only
            await response.aclose()
            return None if response.status_code < 300 else f"HTTP {response.status_code}"
        except (httpx.HTTPError, Refused) as e:
            return f"{type(e).__name__}: {e}"
