"""A hostile client against the server's app, on SQLite and PostgreSQL: other clients' uploads and
Idempotency-Keys, callbacks into the server's own network, deep and long fields, a fault between
storing bytes and committing, tiny media, store paths in messages; and workers that outlive a real
server process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from conftest import KEYS, Server, in_process_server, pg_database, server_config

from detector import samples
from serve.config import WebhookConfig
from serve.webhooks import Sender

pytestmark = pytest.mark.slow
FAULT = {  # a failure after the bytes are stored and before the upload's row commits
    "sqlite": ["CREATE TRIGGER fault BEFORE INSERT ON audit_events WHEN NEW.action = 'uploaded' "
               "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
    "postgresql": ["CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                   "CREATE TRIGGER fault BEFORE INSERT ON audit_events FOR EACH ROW "
                   "WHEN (NEW.action = 'uploaded') EXECUTE FUNCTION fault()"]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, bundles, tmp_path_factory):
    """The server's app in this process, answering a crash with a 500 as a real one does (no port: the
    callbacks refused below name the port it would listen on)."""
    folder = tmp_path_factory.mktemp(request.param)
    with pg_database() if request.param == "postgresql" else nullcontext(f"sqlite:///{folder / 'serve.db'}") as url:
        cfg = server_config(bundles, folder, database_url=url,
                            api_keys={"other": {"key": KEYS["other"], "roles": ["submit"]}})  # a second `submit` key
        with in_process_server(cfg, raise_server_exceptions=False) as s:
            yield s


def post(server, path: Path, key: str = "uploader", **kw) -> httpx.Response:
    with server.as_(key) as c:
        return c.post("/v1/uploads", content=path.read_bytes(), **kw)


def noise(path: Path) -> Path:
    """An image no test has uploaded before (random pixels)."""
    return samples.write_image(path, np.random.default_rng().integers(0, 256, (64, 64, 3), np.uint8))


def stored(server, sha256: str) -> Path:
    return Path(server.cfg["store_dir"]) / sha256[:2] / sha256[2:4] / sha256


def test_submit_keys_see_only_their_own_uploads(server, media_dir):
    up = post(server, media_dir / "coffee.png", params={"metadata": json.dumps({"user": "first"})}).json()
    with server.as_("other") as other:
        r = other.get(f"/v1/uploads/{up['id']}")
        assert r.status_code == 404 and r.json() == other.get(f"/v1/uploads/{'0' * 32}").json()
        assert other.post(f"/v1/uploads/{up['id']}/appeal", json={"reason": "x"}).status_code == 404
    for key in ("uploader", "alice", "admin"):  # the owner, a reviewer and an admin see it
        with server.as_(key) as c:
            assert c.get(f"/v1/uploads/{up['id']}").json()["metadata"] == {"user": "first"}


def test_idempotency_keys_belong_to_one_client(server, media_dir):
    png, jpg = media_dir / "astronaut.png", media_dir / "astronaut.jpg"
    first = post(server, png, headers={"Idempotency-Key": "k-same"}, params={"metadata": '{"user": "first"}'})
    same = post(server, png, "other", headers={"Idempotency-Key": "k-same"})
    assert same.status_code == 202 and same.json()["id"] != first.json()["id"] and same.json()["metadata"] == {}
    post(server, png, headers={"Idempotency-Key": "k-other"})
    other = post(server, jpg, "other", headers={"Idempotency-Key": "k-other"})
    assert other.status_code == 202  # not a 409 telling that the key was used
    assert post(server, png, "other", headers={"Idempotency-Key": "k-same"}).json()["id"] == same.json()["id"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook",
                                 "http://2130706433:{port}/hook", "http://[::1]:{port}/hook",
                                 "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://224.0.0.1/",
                                 "http://user:pass@93.184.215.14/hook", "http://no-such-host.invalid/",
                                 # IPv6 addresses that carry a private or loopback IPv4 one
                                 "http://[64:ff9b::a9fe:a9fe]/", "http://[::169.254.169.254]/", "http://[::10.0.0.1]/",
                                 "http://[2002:a9fe:a9fe::1]/", "http://[::127.0.0.1]:{port}/hook",
                                 "http://[::ffff:0:7f00:1]:{port}/hook", "http://[64:ff9b:1::a00:1]/"])
def test_callbacks_into_the_servers_network_are_refused(server, media_dir, url):
    url = url.format(port=server.cfg["port"])
    as_query = post(server, media_dir / "coffee.png", params={"callback_url": url})
    with server.as_() as c:
        as_form = c.post("/v1/uploads", files={"file": ("c.png", (media_dir / "coffee.png").read_bytes())},
                         data={"callback_url": url})
    for r in (as_query, as_form):
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


@pytest.mark.parametrize("field", [{"metadata": '{"a": ' + "[" * 5000 + "]" * 5000 + "}"},
                                   {"metadata": json.dumps({"a": "x" * 20_000})},
                                   {"callback_url": "https://example.com/" + "a" * 3000}])
def test_deep_and_long_form_fields_are_refused(server, media_dir, field):
    with server.as_() as c:
        r = c.post("/v1/uploads", files={"file": ("c.png", (media_dir / "coffee.png").read_bytes())}, data=field)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
    assert server.as_(None).get("/healthz").status_code == 200


@pytest.mark.parametrize("metadata", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}', '{"a": "\\udc00"}'])
def test_metadata_json_cannot_carry_what_json_cannot_store(server, tmp_path, metadata):
    r = post(server, noise(tmp_path / "nan.png"), params={"metadata": metadata})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


def test_deeply_nested_query_metadata_is_refused(server, media_dir):
    r = post(server, media_dir / "coffee.png", params={"metadata": '{"a": ' + "[" * 2000 + "]" * 2000 + "}"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


def test_a_fault_before_commit_leaves_no_stored_bytes(server, tmp_path):
    image = noise(tmp_path / "fresh.png")
    db = sa.create_engine(server.cfg["database_url"])
    with db.begin() as c:
        for statement in FAULT[db.dialect.name]:
            c.exec_driver_sql(statement)
    try:
        assert post(server, image).status_code == 500
    finally:
        with db.begin() as c:
            c.exec_driver_sql("DROP TRIGGER fault" + (" ON audit_events" if db.dialect.name == "postgresql" else ""))
        db.dispose()
    assert not stored(server, hashlib.sha256(image.read_bytes()).hexdigest()).exists()
    assert not list((Path(server.cfg["store_dir"]) / "tmp").iterdir())
    assert stored(server, post(server, image).json()["sha256"]).is_file()  # the same upload, once the fault is gone


def test_tiny_images_and_videos_are_no_signal(server, tmp_path):
    rng = np.random.default_rng(0)
    paths = [samples.write_image(tmp_path / "tiny.jpg", rng.integers(0, 256, (16, 16, 3), np.uint8)),
             samples.write_image(tmp_path / "tiny.png", rng.integers(0, 256, (8, 8, 3), np.uint8)),
             samples.write_video(tmp_path / "tiny.mp4", rng.integers(0, 256, (10, 16, 16, 3), np.uint8))]
    for path in paths:
        r = post(server, path, params={"wait": 60})
        assert r.status_code == 200 and r.json()["status"] == "scored", r.text
        assert r.json()["verdict"]["decision"] == "no_signal"


def test_a_failed_uploads_message_names_no_store_path(server, media_dir, tmp_path):
    jpeg = (media_dir / "astronaut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # its header is fine; its pixels are cut off
    r = post(server, tmp_path / "cut.jpg", params={"wait": 60})
    up = r.json()
    assert r.status_code == 200 and up["status"] == "failed" and up["error"]["reason"] == "corrupt", r.text
    assert up["sha256"][:8] not in up["error"]["message"] and up["id"] in up["error"]["message"]


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on loopback that records the Host header of every request."""

    def __init__(self):
        hosts = self.hosts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_delivery_checks_the_address_again_and_connects_to_the_one_checked(monkeypatch):
    receiver = Receiver()
    hook = {"id": "e1", "event": "upload.scored", "payload": {}, "url": f"http://localhost:{receiver.server_port}/hook"}
    looked_up = []
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **kw: looked_up.append(host) or resolve(host, *a, **kw))
    async def send(cfg: WebhookConfig) -> str | None:
        async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
            return await Sender(cfg, None)._send(client, hook)

    try:
        # in a thread of its own (a browser test may hold this thread's event loop); refused: a URL stored
        # before its name pointed at loopback, say
        with ThreadPoolExecutor(1) as pool:
            refused = pool.submit(asyncio.run, send(WebhookConfig())).result()
            delivered = pool.submit(asyncio.run, send(WebhookConfig(allow_hosts=["localhost"]))).result()
    finally:
        receiver.shutdown()
    assert refused.startswith("Refused") and delivered is None
    assert receiver.hosts == [f"localhost:{receiver.server_port}"]  # one delivery, named as the URL names it
    assert looked_up.count("localhost") == 2  # one look-up per attempt: the connection went to its answer


def processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # it ended meanwhile
            continue
        if int(group) == pgid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def test_workers_end_with_their_server_after_kill_9(bundles, media_dir, tmp_path):
    server = Server(server_config(bundles, tmp_path), tmp_path).start()
    try:
        assert post(server, media_dir / "astronaut.jpg", params={"wait": 60}).json()["status"] == "scored"
        others = [pid for pid in processes_in_group(server.proc.pid) if pid != server.proc.pid]
        assert others  # its workers
        ends = select.poll()
        for pid in others:
            ends.register(os.pidfd_open(pid), select.POLLIN)  # readable once that process ended
        os.kill(server.proc.pid, signal.SIGKILL)  # the server alone: no chance to stop its workers
        server.proc.wait(timeout=30)
        end = time.monotonic() + 30
        ended: set[int] = set()
        while len(ended) < len(others) and (left := end - time.monotonic()) > 0:
            ended |= {fd for fd, _ in ends.poll(left * 1000)}
        assert processes_in_group(server.proc.pid) == []
    finally:
        with suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)  # whatever is left of its group
        server.kill()


@pytest.mark.parametrize(("method", "path", "status", "error"), [("GET", "/nonexistent", 404, "not_found"),
                                                                ("PUT", "/v1/uploads", 405, "method_not_allowed")])
def test_routing_errors_answer_the_documented_error_shape(server, method, path, status, error):
    with server.as_() as c:
        r = c.request(method, path)
    assert r.status_code == status and r.json() == {"error": error, "detail": r.json()["detail"]}
    assert isinstance(r.json()["detail"], str)


def test_a_lone_surrogate_in_a_reason_is_a_422_not_a_500(server, tmp_path):
    up = post(server, noise(tmp_path / "appeal.png")).json()
    with server.as_() as c:
        r = c.post(f"/v1/uploads/{up['id']}/appeal", content=b'{"reason": "\\udc00"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
    assert "input" not in r.json()["detail"][0]  # the offending text is not echoed back
