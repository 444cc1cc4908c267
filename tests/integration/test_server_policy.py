"""What deep-synthesis rules also ask of the server: provenance, appeals, retention, erasure, reports."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from conftest import Server, in_process_server, review_page, server_config

from detector import samples
from serve.config import RetentionConfig
from serve.files import FileStore
from serve.retention import sweep
from serve.store import Store
from serve.store.tables import uploads

pytestmark = pytest.mark.slow
DAY = 86_400


def submit(server, path: Path, as_: str = "uploader", **params) -> dict:
    with server.as_(as_) as c:
        r = c.post("/v1/uploads", params={"wait": 60} | params, content=path.read_bytes())
    assert r.status_code == 200, r.text
    return r.json()


def pending_item(server, upload_id: str, kind: str = "detection") -> int:
    """The id of the upload's pending review item of that kind (other tests' items may be pending too)."""
    with server.as_("admin") as c:
        items = c.get("/v1/review/items", params={"limit": 500}).json()
    (item,) = [i["id"] for i in items if i["upload_id"] == upload_id and i["kind"] == kind]
    return item


def claim_and_decide(server, reviewer: str, label: str, upload_id: str, reason: str = "looked closely") -> dict:
    """`reviewer` claims this upload's pending item and decides it."""
    with server.as_(reviewer) as c:
        r = c.post(f"/v1/review/items/{pending_item(server, upload_id)}/claim")
        assert r.status_code == 200, r.text
        d = r.json()
        r = c.post(f"/v1/review/items/{d['item']['id']}/decision",
                   json={"label": label, "reason": reason, "version": d["item"]["version"]})
        assert r.status_code == 200, r.text
    return d


def config(bundles, folder: Path, **changes) -> dict:
    return server_config(bundles, folder, provenance={"declared_ai": "likely_fake"}, **changes)


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    """The server's app in this process, for the tests that need no restart; each claims its own uploads' items by id."""
    with in_process_server(config(bundles, tmp_path_factory.mktemp("policy"))) as s:
        yield s


@pytest.fixture
def live(bundles, tmp_path):
    """A real `deepfake-detect serve` process, for the browser, which needs a URL."""
    s = Server(config(bundles, tmp_path), tmp_path).start()
    yield s
    s.kill()


def test_declared_ai_manifests_route_to_review_and_reach_reviewers(live, browser, media_dir, tmp_path):
    identity = samples.test_signer()
    made = samples.sign_c2pa(media_dir / "coffee.png", tmp_path / "made.png", "image/png", identity)
    up = submit(live, made)
    v = up["verdict"]
    assert v["provenance"]["declared_ai"] and v["provenance"]["claim_generator"] == "sample-generator 1.0"
    assert v["decision"] == "likely_fake" and v["decided_by"] == "provenance"  # no face, yet flagged
    plain = submit(live, media_dir / "coffee.png")["verdict"]
    assert plain["provenance"] is None and plain["decision"] == "no_signal"
    page = review_page(browser, live, "bob")  # reviewers see the manifest's story on the page
    page.keyboard.press("n")
    page.wait_for_selector("#detail:not(.hidden)")
    text = page.inner_text("#provenance")
    item_id = int(page.inner_text("#item-id").lstrip("#"))
    page.close()
    with live.as_("bob") as c:
        detail = c.get(f"/v1/review/items/{item_id}").json()
    assert detail["upload"]["id"] == up["id"] and detail["upload"]["verdict"]["provenance"]["state"] == "valid"
    assert "declares AI-generated media" in text and "sample-generator 1.0" in text and "not the models" in text


def test_an_appeal_goes_to_another_reviewer_and_its_outcome_is_recorded(server, media_dir):
    up = submit(server, media_dir / "astronaut.png")
    first = claim_and_decide(server, "alice", "confirmed_fake", up["id"], "seam along the hairline")
    with server.as_("uploader") as c:
        r = c.post(f"/v1/uploads/{up['id']}/appeal", json={"reason": "this is my own photo"})
        assert r.status_code == 201 and r.json()["kind"] == "appeal" and r.json()["appeal_of"] == first["item"]["id"]
        assert c.post(f"/v1/uploads/{up['id']}/appeal", json={"reason": "again"}).status_code == 409
    with server.as_("bob") as c:  # appeals come from the uploader's client, not from reviewers
        assert c.post(f"/v1/uploads/{up['id']}/appeal", json={"reason": "x"}).status_code == 403
    appeal = pending_item(server, up["id"], "appeal")
    with server.as_("alice") as c:  # the reviewer who decided never gets the appeal
        assert c.post(f"/v1/review/items/{appeal}/claim").status_code == 409
    with server.as_("bob") as c:
        detail = c.post(f"/v1/review/items/{appeal}/claim").json()
        assert detail["item"]["kind"] == "appeal" and detail["appeal"]["reason"] == "this is my own photo"
        assert detail["appeal"]["first_decision"]["label"] == "confirmed_fake"
        assert detail["appeal"]["first_decision"]["reviewer"] == "alice"
        wrong = c.post(f"/v1/review/items/{detail['item']['id']}/decision",
                       json={"label": "cleared", "reason": "x", "version": detail["item"]["version"]})
        assert wrong.status_code == 409  # appeals end upheld or overturned
        r = c.post(f"/v1/review/items/{detail['item']['id']}/decision",
                   json={"label": "overturned", "reason": "EXIF and a second shot match", "version": detail["item"]["version"]})
        assert r.status_code == 200
        audit = [e["action"] for e in c.get(f"/v1/review/items/{detail['item']['id']}/audit").json()]
    assert audit[-4:] == ["decided", "appealed", "claimed", "decided"]
    with server.as_("admin") as c:
        report = c.get("/v1/reports/summary").json()
    assert report["appeals"] == {"received": 1, "upheld": 0, "overturned": 1, "open": 0}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_retention_erases_only_what_expired(backend, bundles, media_dir, tmp_path, request):
    db = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    retention = {"upload_bytes_days": 30, "crops_days": 7, "verdicts_days": 90, "interval_s": 3600}
    with in_process_server(server_config(bundles, tmp_path, retention=retention, **db)) as server:
        old, fresh = submit(server, media_dir / "pan.mp4"), submit(server, media_dir / "astronaut.jpg")
        same_bytes = submit(server, media_dir / "pan.mp4")  # stored once; its copy must survive the old one
    evidence = Path(server.cfg["store_dir"]) / "evidence"
    assert (evidence / old["id"]).is_dir() and (evidence / fresh["id"]).is_dir()
    store = Store(server.cfg["database_url"])
    with store.engine.begin() as c:  # the first upload is 40 days old, its twin 10 days
        c.execute(uploads.update().where(uploads.c.id == old["id"]).values(created_at=time.time() - 40 * DAY))
        c.execute(uploads.update().where(uploads.c.id == same_bytes["id"]).values(created_at=time.time() - 10 * DAY))
    assert sweep(store, FileStore(server.cfg["store_dir"]), RetentionConfig(**retention)) == {
        "bytes": 1, "crops": 2, "verdict": 0}  # what a server's sweeper does at start and every interval_s
    o, t, f = (store.uploads.get(u["id"]) for u in (old, same_bytes, fresh))
    assert o["bytes_erased_at"] and o["crops_erased_at"] and o["verdict_erased_at"] is None and o["verdict"]
    assert t["bytes_erased_at"] is None and t["crops_erased_at"] and f["crops_erased_at"] is None
    stored = Path(server.cfg["store_dir"]) / old["sha256"][:2] / old["sha256"][2:4] / old["sha256"]
    assert stored.is_file()  # the twin still needs the bytes
    assert not (evidence / old["id"]).exists() and not (evidence / same_bytes["id"]).exists()
    assert (evidence / fresh["id"]).is_dir() and (Path(server.cfg["store_dir"]) / f["sha256"][:2]).is_dir()
    erased = [e for e in store.audit.events(upload_id=old["id"]) if e["action"] == "erased"]
    assert {w for e in erased for w in e["detail"]["what"]} == {"bytes", "crops"}
    assert all(e["actor"] == "retention" and "days" in e["detail"]["why"] for e in erased)


def test_delete_erases_bytes_and_crops_at_once_and_idempotently(server, media_dir):
    up = submit(server, media_dir / "silent.mp4")
    stored = Path(server.cfg["store_dir"]) / up["sha256"][:2] / up["sha256"][2:4] / up["sha256"]
    assert stored.is_file()
    with server.as_("uploader") as c:
        assert c.delete(f"/v1/uploads/{up['id']}").status_code == 403  # admin only
    with server.as_("admin") as c:
        first = c.delete(f"/v1/uploads/{up['id']}").json()
        again = c.delete(f"/v1/uploads/{up['id']}").json()
        assert c.delete(f"/v1/uploads/{'0' * 32}").status_code == 404
    assert sorted(first["erased"]) == ["bytes", "crops"] and again["erased"] == []
    assert again["bytes_erased_at"] == first["bytes_erased_at"]
    assert not stored.exists() and not (Path(server.cfg["store_dir"]) / "evidence" / up["id"]).exists()
    events = server.api.store.audit.events(upload_id=up["id"])
    assert [e["detail"]["why"] for e in events if e["action"] == "erased"] == ["erasure request"]


def test_report_counts_decisions_agreement_appeals_and_queue_times(server, media_dir, cli, tmp_path):
    with server.as_("admin") as c:
        before = c.get("/v1/reports/summary", params={"since": "2020-01-01"}).json()
    ups = [submit(server, media_dir / n) for n in ("astronaut.jpg", "astronaut.bmp", "coffee.png")]
    decided = [claim_and_decide(server, "alice", "confirmed_fake", ups[0]["id"]),
               claim_and_decide(server, "bob", "cleared", ups[1]["id"])]
    with server.as_("admin") as c:
        after = c.get("/v1/reports/summary", params={"since": "2020-01-01"}).json()
        rows = dict(csv.reader(io.StringIO(c.get("/v1/reports/summary",
                                                 params={"since": "2020-01-01", "format": "csv"}).text)))
        future = c.get("/v1/reports/summary", params={"since": "2999-01-01"}).json()

    def grew(*keys: str) -> int:
        def get(report: dict) -> int:
            for k in keys:
                report = (report or {}).get(k)
            return report or 0

        return get(after) - get(before)

    assert grew("uploads", "received") == 3 and grew("uploads", "scored") == 3
    assert grew("decisions", "review") == 2 and grew("decisions", "no_signal") == 1
    assert grew("review", "labels", "confirmed_fake") == 1 and grew("review", "labels", "cleared") == 1
    scores = [d["upload"]["verdict"]["score"] for d in decided]
    agree = (scores[0] >= 0.5) + (scores[1] < 0.5)  # confirmed what leaned fake, cleared what leaned real
    assert grew("review", "agreement", "compared") == 2 and grew("review", "agreement", "agree") == agree
    assert grew("time_in_queue_s", "scoring", "n") == 3 and grew("time_in_queue_s", "review", "n") == 2
    assert rows["uploads.received"] == str(after["uploads"]["received"])
    assert rows["review.agreement.compared"] == str(after["review"]["agreement"]["compared"])
    assert future["uploads"]["received"] == 0
    (cfg := tmp_path / "serve.yaml").write_text(yaml.safe_dump(server.cfg))  # the server's own config
    code, out, _ = cli("report", "--config", str(cfg), "--since", "2020-01-01", "--format", "csv")
    assert code == 0 and f"decisions.review,{after['decisions']['review']}" in out
    assert "\nsoftware,deepfake-detector " in out and "\ngenerated_at,20" in out  # which version made it, when


def test_migrations_upgrade_an_existing_database(tmp_path):
    """A database made at the first migration gains the later columns without losing rows."""
    from alembic import command
    from alembic.config import Config

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parents[2] / "serve" / "migrations"))
    with store.engine.begin() as c:
        cfg.attributes["connection"] = c
        command.upgrade(cfg, "0001")
        c.exec_driver_sql("INSERT INTO uploads (id, sha256, size, kind, meta, status, attempts, created_at) "
                          "VALUES ('a', 'b', 1, 'image', '{}', 'scored', 1, 0)")
    store.migrate()
    row = store.uploads.get("a")
    assert row["status"] == "scored" and row["media_type"] == "image" and row["bytes_erased_at"] is None
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0006"
