"""The detection server, running for real: uploads, errors, review queue, webhooks, metrics, fuzzing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import KEYS, Caller, Server, in_process_server, server_config
from prometheus_client.parser import text_string_to_metric_families

from serve.store.tables import review_items

pytestmark = pytest.mark.slow


class Receiver:
    """A webhook endpoint that refuses each event's first delivery (500), then accepts it."""

    def __init__(self):
        self.got: list[tuple[dict, dict]] = []
        self.attempts: dict[str, int] = {}
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                eid = self.headers["X-Event-Id"]
                outer.attempts[eid] = outer.attempts.get(eid, 0) + 1
                if outer.attempts[eid] == 1:
                    self.send_response(500)
                else:
                    with outer.arrived:
                        outer.got.append((dict(self.headers), json.loads(body) | {"_raw": body.decode()}))
                        outer.arrived.notify_all()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.http.shutdown()


def config(bundles, folder: Path) -> dict:
    return server_config(bundles, folder, limits={"max_bytes": 3_000_000}, review={"lease_s": 60},
                         webhooks={"secret": "s3cret", "backoff_s": 0.2, "allow_hosts": ["127.0.0.1"]})  # the receiver


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    """The server's app in this process: the routes, engine, webhooks and all, with no port."""
    with in_process_server(config(bundles, tmp_path_factory.mktemp("server"))) as s:
        yield s


def upload(server, path: Path, wait: float = 0, **kw) -> httpx.Response:
    with server.as_(kw.pop("as_", "uploader")) as c:
        return c.post("/v1/uploads", params={"wait": wait} | kw.pop("params", {}),
                      files={"file": (path.name, path.read_bytes())}, **kw)


def scored(server, upload_id: str, timeout: float = 120) -> dict:
    """The upload once it left the queue (the engine says when)."""
    with ThreadPoolExecutor(1) as pool:  # a thread of its own: a browser test may hold this thread's event loop
        pool.submit(asyncio.run, server.api.engine.wait(upload_id, timeout)).result()
    with server.as_() as c:
        up = c.get(f"/v1/uploads/{upload_id}").json()
    assert up["status"] in ("scored", "failed"), up
    return up


def test_keys_and_roles_guard_every_route(server):
    assert server.as_(None).post("/v1/uploads", content=b"x").status_code == 401
    with server.as_("alice") as c:  # a reviewer cannot submit
        r = c.post("/v1/uploads", content=b"x")
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    with server.as_("uploader") as c:  # an uploader cannot see the queue or evidence
        assert c.get("/v1/review/items").status_code == 403
        assert c.get(f"/v1/review/evidence/{'a' * 32}/crop0.jpg").status_code == 403
    with server.as_("admin") as c:
        assert c.get("/v1/review/items").status_code == 200
    assert server.as_(None).get("/metrics").status_code == 401  # a scraper's key (role metrics) or admin's
    with server.as_("prometheus") as c:
        assert c.get("/metrics").status_code == 200 and c.get("/v1/review/items").status_code == 403
    assert server.as_(None).get("/healthz").json() == {"status": "ok"}
    assert "/v1/uploads" in server.as_(None).get("/openapi.json").json()["paths"]


def test_an_upload_is_kept_scored_and_answered(server, media_dir):
    r = upload(server, media_dir / "pan.mp4", wait=60, params={"metadata": json.dumps({"user": 7})})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["status"] == "scored" and up["metadata"] == {"user": 7} and up["media_type"] == "video"
    v = up["verdict"]
    assert v["id"] == hashlib.sha256((media_dir / "pan.mp4").read_bytes()).hexdigest() == up["sha256"]
    assert v["visual"]["frames_scored"] == 8 and v["audio"]["score"] is not None and v["decision"] == "review"
    stored = Path(server.cfg["store_dir"]) / up["sha256"][:2] / up["sha256"][2:4] / up["sha256"]
    assert stored.read_bytes() == (media_dir / "pan.mp4").read_bytes()
    with server.as_() as c:  # the raw body works too, answered 202 at once
        r = c.post("/v1/uploads", content=(media_dir / "astronaut.jpg").read_bytes())
    assert r.status_code == 202 and r.json()["status"] in ("queued", "processing", "scored")
    assert scored(server, r.json()["id"])["verdict"]["media_type"] == "image"


def test_idempotency_key_means_one_upload(server, media_dir):
    headers = {"Idempotency-Key": "order-42"}
    first = upload(server, media_dir / "astronaut.png", headers=headers).json()
    again = upload(server, media_dir / "astronaut.png", headers=headers).json()
    assert again["id"] == first["id"]
    other = upload(server, media_dir / "coffee.png", headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    scored(server, first["id"])
    with server.as_("admin") as c:
        items = c.get("/v1/review/items", params={"state": "pending", "limit": 500}).json()
    assert sum(i["upload_id"] == first["id"] for i in items) <= 1
    blank = [upload(server, media_dir / "astronaut.png", headers={"Idempotency-Key": k}) for k in ("", "")]
    assert [r.status_code for r in blank] == [202] * 2 and len({r.json()["id"] for r in blank}) == 2  # no key


def test_bad_input_fails_alone_with_its_reason(server, media_dir, tmp_path):
    with server.as_() as c:
        r = c.post("/v1/uploads", content=b"just some text, not media")
        assert r.status_code == 415 and r.json()["error"] == "unsupported" and "/tmp" not in r.text
        r = c.post("/v1/uploads", content=b"\0" * 3_100_000)
        assert r.status_code == 413
        assert c.post("/v1/uploads", content=b"").status_code == 422
        assert c.post("/v1/uploads", params={"metadata": "[1]"},
                      content=(media_dir / "coffee.png").read_bytes()).status_code == 422
        assert c.post("/v1/uploads", params={"callback_url": "file:///etc/passwd"},
                      content=(media_dir / "coffee.png").read_bytes()).status_code == 422
        assert c.get("/v1/uploads/..%2F..%2Fetc%2Fpasswd").status_code == 404
        # a PNG that claims 100,000 x 100,000 pixels: refused from its header, never decoded
        bomb = (media_dir / "coffee.png").read_bytes()
        ihdr = b"IHDR" + (100_000).to_bytes(4, "big") * 2 + bomb[24:29]
        bomb = bomb[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + bomb[33:]
        r = c.post("/v1/uploads", params={"wait": 30}, content=bomb)
        assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
        # an MP4 cut in half: its index (at the end) is gone
        half = (media_dir / "pan.mp4").read_bytes()
        r = c.post("/v1/uploads", params={"wait": 60}, content=half[: len(half) // 2])
        assert r.status_code == 422 and r.json()["error"] == "corrupt", r.text
    assert upload(server, media_dir / "astronaut.webp", wait=60).json()["status"] == "scored"  # still serving


def test_review_queue_leases_versions_and_audit(server, media_dir):
    ids = [upload(server, media_dir / n).json()["id"] for n in ("silent.mp4", "pan.mkv", "astronaut.bmp")]
    for i in ids:
        assert scored(server, i)["verdict"]["decision"] == "review"  # the test bundles send faces to review
    with server.as_("alice") as alice, server.as_("bob") as bob:
        items = alice.get("/v1/review/items").json()
        prios = [i["priority"] for i in items]
        assert prios == sorted(prios, reverse=True) and {i for i in ids} <= {i["upload_id"] for i in items}
        a = alice.post("/v1/review/claim").json()
        b = bob.post("/v1/review/claim").json()
        assert a["item"]["id"] != b["item"]["id"]  # never the same item
        assert a["upload"]["verdict"]["decision"] == "review" and a["item"]["priority"] >= b["item"]["priority"]
        faces = a["upload"]["verdict"]["visual"]["faces"]  # every upload in this queue shows a face
        img = alice.get(a["evidence"][0]["url"])  # the worst crop and its frame, face boxed
        frame = alice.get(a["evidence"][0]["frame_url"])
        assert img.status_code == frame.status_code == 200 and img.content[:2] == frame.content[:2] == b"\xff\xd8"
        scores = [e["score"] for e in a["evidence"]]
        best = max(f["score"] for t in faces for f in t["frames"])
        assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(best, abs=1e-4)
        item_id, version = a["item"]["id"], a["item"]["version"]
        stale = alice.post(f"/v1/review/items/{item_id}/decision",
                           json={"label": "cleared", "reason": "x", "version": version - 1})
        assert stale.status_code == 409
        theft = bob.post(f"/v1/review/items/{item_id}/decision",
                         json={"label": "cleared", "reason": "x", "version": version})
        assert theft.status_code == 409  # bob does not hold it
        ok = alice.post(f"/v1/review/items/{item_id}/decision",
                        json={"label": "confirmed_fake", "reason": "blending seam at the jaw", "version": version})
        assert ok.status_code == 200 and ok.json()["state"] == "decided" and ok.json()["reviewer"] == "alice"
        with server.api.store.engine.begin() as c:  # bob's lease runs out: the item is pending again for alice
            c.execute(review_items.update().where(review_items.c.id == b["item"]["id"]).values(lease_until=time.time() - 1))
        assert b["item"]["id"] in [i["id"] for i in alice.get("/v1/review/items").json()]
        late = bob.post(f"/v1/review/items/{b['item']['id']}/decision",
                        json={"label": "cleared", "reason": "late", "version": b["item"]["version"]})
        assert late.status_code == 409
        audit = alice.get(f"/v1/review/items/{item_id}/audit").json()
        actions = [e["action"] for e in audit]
        assert actions[:3] == ["uploaded", "scored", "queued_for_review"] and actions[-2:] == ["claimed", "decided"]
        assert audit[-1]["actor"] == "alice" and audit[-1]["detail"]["reason"] == "blending seam at the jaw"


def test_an_escalation_goes_to_the_senior_queue_with_its_note_for_a_final_decision(server, media_dir):
    uid = upload(server, media_dir / "astronaut.gif", wait=60).json()["id"]
    with server.as_("carol") as carol, server.as_("dave") as dave, server.as_("admin") as admin:
        first = claim_item_of(carol, server, uid, "detection")
        r = carol.post(f"/v1/review/items/{first['item']['id']}/decision",
                       json={"label": "escalated", "reason": "looks like a public figure: legal should see it",
                             "version": first["item"]["version"]})
        assert r.status_code == 200 and r.json()["label"] == "escalated"
        assert uid not in [i["upload_id"] for i in dave.get("/v1/review/items").json()]  # reviewers do not see it
        (senior,) = [i for i in admin.get("/v1/review/items").json() if i["upload_id"] == uid]
        assert senior["kind"] == "escalation" and senior["priority"] > 100
        assert dave.post(f"/v1/review/items/{senior['id']}/claim").status_code == 409
        claimed = admin.post(f"/v1/review/items/{senior['id']}/claim").json()
        assert claimed["escalation"] == {"by": "carol", "note": "looks like a public figure: legal should see it",
                                         "at": claimed["escalation"]["at"], "item": first["item"]["id"]}
        bad = admin.post(f"/v1/review/items/{senior['id']}/decision",
                         json={"label": "escalated", "reason": "again", "version": claimed["item"]["version"]})
        assert bad.status_code == 409  # the senior's decision is final: fake or cleared
        done = admin.post(f"/v1/review/items/{senior['id']}/decision",
                          json={"label": "confirmed_fake", "reason": "confirmed with the subject's office",
                                "version": claimed["item"]["version"]})
        assert done.status_code == 200 and done.json()["state"] == "decided"
        actions = [(e["action"], e["actor"]) for e in admin.get(f"/v1/review/items/{senior['id']}/audit").json()]
        assert actions[-5:] == [("claimed", "carol"), ("decided", "carol"), ("escalated", "carol"), ("claimed", "admin"),
                                ("decided", "admin")]


def claim_item_of(c: Caller, server, upload_id: str, kind: str) -> dict:
    """The reviewer claims the upload's pending item of that kind."""
    (item,) = [i for i in c.get("/v1/review/items", params={"limit": 500}).json()
               if i["upload_id"] == upload_id and i["kind"] == kind]
    r = c.post(f"/v1/review/items/{item['id']}/claim")
    assert r.status_code == 200, r.text
    return r.json()


def delivered(receiver: Receiver, event: str, upload_id: str, timeout: float = 30) -> list[tuple[dict, dict]]:
    """Deliveries of `event` about the upload, once there is one (headers, body)."""
    def found():
        return [(h, b) for h, b in receiver.got if b["event"] == event and b["upload"]["id"] == upload_id]

    with receiver.arrived:
        receiver.arrived.wait_for(found, timeout)
        return found()


def test_webhooks_are_signed_retried_and_unique(server, media_dir, receiver):
    r = upload(server, media_dir / "astronaut.gif", params={"callback_url": receiver.url})
    uid = r.json()["id"]
    scored(server, uid)
    ((headers, body),) = delivered(receiver, "upload.scored", uid)
    assert body["event"] == "upload.scored" and body["upload"]["verdict"]["id"] == r.json()["sha256"]
    assert receiver.attempts[headers["X-Event-Id"]] == 2  # refused once, retried
    expected = hmac.new(b"s3cret", headers["X-Timestamp"].encode() + b"." + body["_raw"].encode(), hashlib.sha256)
    assert headers["X-Signature"] == "sha256=" + expected.hexdigest()
    with server.as_("bob") as bob:  # a reviewer's decision on that upload is announced too
        d = claim_item_of(bob, server, uid, "detection")
        huge = bob.post(f"/v1/review/items/{d['item']['id']}/decision",
                        json={"label": "cleared", "reason": "x", "version": 2**80})  # found by the fuzz: was a 500
        assert huge.status_code == 422
        r = bob.post(f"/v1/review/items/{d['item']['id']}/decision",
                     json={"label": "cleared", "reason": "a real photo", "version": d["item"]["version"]})
        assert r.status_code == 200
    ((_, decided),) = delivered(receiver, "review.decided", uid)
    assert decided["review"]["label"] == "cleared" and decided["review"]["reviewer"] == "bob"
    assert decided["id"] != body["id"] and decided["upload"]["id"] == uid
    with server.as_() as c:  # the uploader appeals; another reviewer upholds it: announced as appeal.decided
        assert c.post(f"/v1/uploads/{uid}/appeal", json={"reason": "mine"}).status_code == 201
    with server.as_("alice") as alice:
        d = claim_item_of(alice, server, uid, "appeal")
        r = alice.post(f"/v1/review/items/{d['item']['id']}/decision",
                       json={"label": "upheld", "reason": "still cleared", "version": d["item"]["version"]})
        assert r.status_code == 200
    ((_, appealed),) = delivered(receiver, "appeal.decided", uid)
    assert appealed["review"]["label"] == "upheld" and appealed["review"]["reviewer"] == "alice"
    assert appealed["review"]["kind"] == "appeal" and appealed["upload"]["id"] == uid


def test_metrics_count_what_happened(server, media_dir):
    assert upload(server, media_dir / "pan.webm", wait=60).json()["verdict"]["decision"] == "review"
    with server.as_() as c:
        assert c.post("/v1/uploads", content=b"not media").status_code == 415
    text = server.as_("prometheus").get("/metrics").text
    assert "deepfake_queue_depth" in text and 'deepfake_decisions_total{decision="review"}' in text
    assert 'deepfake_batch_size_count{model="visual"}' in text and 'deepfake_stage_seconds_count{stage="scan"}' in text
    assert 'deepfake_rejected_total{status="415"}' in text


def metric(server, name: str, /, **labels: str) -> float | None:
    for family in text_string_to_metric_families(server.as_("prometheus").get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_metrics_of_latency_queue_and_models_and_refusals_are_uploads_only(server):
    before = metric(server, "deepfake_rejected_total", status="422") or 0
    with server.as_("alice") as alice:
        bad = alice.post("/v1/review/items/1/decision", json={"label": "maybe", "reason": "x", "version": 1})
    assert bad.status_code == 422 and (metric(server, "deepfake_rejected_total", status="422") or 0) == before
    with server.as_() as c:
        assert c.post("/v1/uploads", content=b"").status_code == 422
    assert metric(server, "deepfake_rejected_total", status="422") == before + 1
    assert metric(server, "deepfake_request_seconds_count", route="/v1/review/items/{item_id}/decision",
                  method="POST") >= 1
    assert metric(server, "deepfake_review_items", state="pending") is not None
    assert metric(server, "deepfake_review_items", state="claimed") is not None
    assert metric(server, "deepfake_review_oldest_pending_seconds") >= 0
    with server.as_("admin") as admin:
        models = admin.get("/readyz").json()["models"]
    for m in models:
        assert metric(server, "deepfake_model_info", modality=m["modality"], name=m["name"], version=m["version"]) == 1


def test_times_are_iso_8601_and_a_claim_shows_its_upload(server, media_dir):
    up = upload(server, media_dir / "astronaut.png", wait=60).json()
    assert up["status"] == "scored" and up["created_at"].endswith("Z") and up["scored_at"].endswith("Z")
    assert datetime.fromisoformat(up["created_at"]) <= datetime.fromisoformat(up["scored_at"])
    with server.as_("carol") as carol:
        d = claim_item_of(carol, server, up["id"], "detection")
        assert d["item"]["media_type"] == "image" and d["item"]["decision"] == "review"
        assert datetime.fromisoformat(d["item"]["lease_until"]) > datetime.now(timezone.utc)
        assert d["item"]["uploaded_at"] == up["created_at"]
        audit = carol.get(f"/v1/review/items/{d['item']['id']}/audit").json()
        assert all(datetime.fromisoformat(e["at"]).tzinfo == timezone.utc for e in audit)
        carol.post(f"/v1/review/items/{d['item']['id']}/release", json={"version": d["item"]["version"]})


def test_docs_load_offline_and_declare_the_api_key(server):
    page = server.as_(None).get("/docs").text
    assert "cdn" not in page and "/static-offline-docs/swagger-ui-bundle.js" in page
    js = server.as_(None).get("/static-offline-docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
    spec = server.as_(None).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": "an API key (`deepfake-detect api-key`)"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"APIKeyHeader": []} in spec["paths"]["/v1/uploads"]["post"]["security"]
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) and spec["paths"]["/v1/review/claim"]["post"]["operationId"] == "claim"


@pytest.fixture(scope="module")
def live(bundles, tmp_path_factory):
    """A real `deepfake-detect serve` process, for a client that needs a URL."""
    folder = tmp_path_factory.mktemp("live")
    s = Server(config(bundles, folder), folder).start()
    yield s
    s.kill()


def test_fuzzing_the_openapi_schema_finds_no_server_error(live):
    exe = Path(sys.executable).with_name("schemathesis")
    r = subprocess.run([str(exe), "run", f"{live.url}/openapi.json", "--checks", "not_a_server_error",
                        "--max-examples", "25", "-H", f"X-API-Key: {KEYS['admin']}", "--no-color",
                        "--exclude-path", "/v1/uploads", "--request-timeout", "30"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
    # uploads get a fuzz of their own: random bodies and parameters, never a 5xx
    r = subprocess.run([str(exe), "run", f"{live.url}/openapi.json", "--checks", "not_a_server_error",
                        "--max-examples", "15", "-H", f"X-API-Key: {KEYS['admin']}", "--no-color",
                        "--include-path", "/v1/uploads", "--include-method", "POST", "--request-timeout", "60"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_the_queue_and_the_next_claim_keep_to_the_reviewers_filters(server, media_dir):
    ids = {}
    for name, channel in [("astronaut.png", "sport"), ("pan.mp4", "sport"), ("astronaut.webp", "newsdesk")]:
        r = upload(server, media_dir / name, data={"metadata": json.dumps({"channel": channel})})
        ids[name] = r.json()["id"]
        assert scored(server, ids[name])["verdict"]["decision"] == "review"
    with server.as_("dave") as dave:
        def queued(**filters) -> set[str]:
            r = dave.get("/v1/review/items", params={"limit": 500} | filters)
            assert r.status_code == 200, r.text
            return {i["upload_id"] for i in r.json()} & set(ids.values())

        assert queued() == set(ids.values())
        assert queued(channel="sport") == {ids["astronaut.png"], ids["pan.mp4"]}
        assert queued(channel="sport", media_type="video") == {ids["pan.mp4"]}
        assert queued(decision="likely_fake") == set() and queued(waited_min=60) == set()
        assert dave.get("/v1/review/items", params={"media_type": "text"}).status_code == 422
        got = dave.post("/v1/review/claim", params={"channel": "newsdesk", "media_type": "image"}).json()
        assert got["upload"]["id"] == ids["astronaut.webp"]  # the most urgent item the filters keep
        assert dave.post("/v1/review/claim", params={"channel": "newsdesk"}).status_code == 204  # none left


def test_a_reviewer_amends_a_recent_decision_once_nothing_came_of_it(server, media_dir):
    ups = [upload(server, media_dir / n, data={"metadata": json.dumps({"channel": "amend"})}).json()["id"]
           for n in ("astronaut.gif", "astronaut.jpg")]
    for up in ups:
        scored(server, up)
    with server.as_("carol") as carol, server.as_("bob") as bob:
        decided = []
        for label in ("cleared", "escalated"):
            got = carol.post("/v1/review/claim", params={"channel": "amend"}).json()["item"]
            decided.append(carol.post(f"/v1/review/items/{got['id']}/decision",
                                      json={"label": label, "reason": "first look", "version": got["version"]}).json())
        item, escalated = decided
        body = {"label": "confirmed_fake", "reason": "the jaw seam, seen on a second look", "version": item["version"]}
        assert bob.post(f"/v1/review/items/{item['id']}/amend", json=body).status_code == 409  # not bob's
        assert carol.post(f"/v1/review/items/{escalated['id']}/amend",
                          json=body | {"version": escalated["version"]}).status_code == 409  # a senior has it now
        amended = carol.post(f"/v1/review/items/{item['id']}/amend", json=body)
        assert amended.status_code == 200 and amended.json()["label"] == "confirmed_fake"
        assert carol.post(f"/v1/review/items/{item['id']}/amend", json=body).status_code == 409  # stale version now
        (event,) = [e for e in carol.get(f"/v1/review/items/{item['id']}/audit").json() if e["action"] == "amended"]
        assert event["actor"] == "carol" and event["detail"]["from"] == {"label": "cleared", "reason": "first look"}
        with server.api.store.engine.begin() as c:  # eleven minutes later: the window has closed
            c.execute(review_items.update().where(review_items.c.id == item["id"]).values(decided_at=time.time() - 660))
        late = carol.post(f"/v1/review/items/{item['id']}/amend", json=body | {"version": amended.json()["version"]})
        assert late.status_code == 409 and "10 minutes" in late.json()["detail"]


def test_a_reviewer_gets_a_picture_of_the_sound_and_none_for_a_photo(server, media_dir):
    from PIL import Image

    from serve.sound import SPEC_H, WAVE_H, WIDTH

    ids = {n: upload(server, media_dir / n).json()["id"] for n in ("chirp.wav", "astronaut.png", "silent.mp4")}
    for i in ids.values():
        scored(server, i)
    with server.as_("alice") as alice:
        r = alice.get(f"/v1/review/media/{ids['chirp.wav']}/sound.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(r.content))
        assert picture.size == (WIDTH, WAVE_H + SPEC_H)
        spec = np.asarray(picture.convert("L"))[WAVE_H:]
        rising = [spec[:, x].argmax() for x in (WIDTH // 10, WIDTH // 2, 9 * WIDTH // 10)]  # the chirp's pitch
        assert rising[0] > rising[1] > rising[2]  # rows count down from 8 kHz: a rising tone climbs
        assert alice.get(f"/v1/review/media/{ids['astronaut.png']}/sound.png").status_code == 404
        assert alice.get(f"/v1/review/media/{ids['silent.mp4']}/sound.png").status_code == 404
    with server.as_("uploader") as c:
        assert c.get(f"/v1/review/media/{ids['chirp.wav']}/sound.png").status_code == 403
