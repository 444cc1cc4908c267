"""The model registry on a real server: a bundle registered from the command line, promoted over the API
while uploads keep arriving (each scored once, by one model or the other), rolled back; audited."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
import torch
from conftest import KEYS, Server, server_config

from detector.bundle import BundleMeta, Thresholds, bundle_meta, save_bundle
from detector.cli import main
from detector.models import create_model
from serve.store import Store
from serve.store.tables import audit_events

pytestmark = pytest.mark.slow


def photo_version(server: Server, photo) -> str:
    """Upload the photo, wait for its Verdict: the visual model version that scored it."""
    r = httpx.post(f"{server.url}/v1/uploads", params={"wait": 60}, headers={"X-API-Key": KEYS["uploader"]},
                   files={"file": (photo.name, photo.read_bytes())}, timeout=90)
    verdict = r.json()["verdict"]
    return {m["modality"]: m["version"] for m in verdict["models"]}["visual"]


def test_register_promote_under_load_and_roll_back(bundles, media_dir, tmp_path):
    torch.manual_seed(1)  # another network: another version
    net = create_model("timm", backbone="resnet10t")
    candidate = save_bundle(tmp_path / "candidate", net, BundleMeta(
        family="timm", model={"backbone": "resnet10t"}, input_size=64, mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(), thresholds=Thresholds(likely_fake=0.99, review=0.0), name="candidate-face"))
    live, new = bundle_meta(bundles[0]).version, bundle_meta(candidate).version
    server = Server(server_config(bundles, tmp_path, engine={"models_poll_s": 0.5}), tmp_path).start()
    config = tmp_path / f"serve-{server.port}.yaml"
    admin = httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS["admin"]}, timeout=30)
    photo = media_dir / "astronaut.jpg"
    try:
        assert photo_version(server, photo) == live
        assert main(["model", "register", str(candidate), "--config", str(config)]) == 0
        states = {m["version"]: m["state"] for m in admin.get("/v1/models").json()}
        assert states[live] == "live" and states[new] == "candidate"  # registered, not scoring
        assert photo_version(server, photo) == live

        with ThreadPoolExecutor(4) as pool:  # uploads arriving while the server switches
            during = [pool.submit(photo_version, server, photo) for _ in range(12)]
            promoted = admin.post(f"/v1/models/{new}/promote")
            assert promoted.status_code == 200 and promoted.json()["parent"] == live
            versions = [f.result() for f in during]
        assert set(versions) <= {live, new} and len(versions) == 12  # every one scored, by one model or the other
        deadline = time.monotonic() + 30
        while photo_version(server, photo) != new:
            assert time.monotonic() < deadline, "the server did not switch to the promoted model"
        while f"now scoring with visual candidate-face@{new}" not in server.read_log():  # the operator sees it
            assert time.monotonic() < deadline, "the switch is not in the server's log"
            time.sleep(0.1)  # the log is copied from the server's output by a thread

        assert admin.post(f"/v1/models/{new}/promote").status_code == 409  # live already
        assert admin.post("/v1/models/0123456789abcdef/promote").status_code == 404  # never registered
        assert main(["model", "rollback", "visual", "--config", str(config)]) == 0
        deadline = time.monotonic() + 30
        while photo_version(server, photo) != live:
            assert time.monotonic() < deadline, "the server did not roll back"
        states = {m["version"]: m["state"] for m in admin.get("/v1/models").json()}
        assert states == {live: "live", new: "retired", bundle_meta(bundles[1]).version: "live"}

        store = Store(server.cfg["database_url"])
        with store.engine.connect() as c:
            done = c.execute(sa.select(audit_events.c.actor, audit_events.c.action).where(
                audit_events.c.action.like("model_%")).order_by(audit_events.c.id)).all()
            scored = c.execute(sa.text("SELECT upload_id, count(*) FROM audit_events WHERE action = 'scored' "
                                       "GROUP BY upload_id")).all()
        assert [a for _, a in done][-3:] == ["model_registered", "model_promoted", "model_rolled_back"]
        assert ("admin", "model_promoted") in done
        assert scored and all(n == 1 for _, n in scored)  # no upload scored twice across the switches
    finally:
        admin.close()
        server.kill()


def test_two_replicas_on_postgresql_switch_together(bundles, media_dir, tmp_path, pg_url):
    torch.manual_seed(2)
    net = create_model("timm", backbone="resnet10t")
    candidate = save_bundle(tmp_path / "candidate", net, BundleMeta(
        family="timm", model={"backbone": "resnet10t"}, input_size=64, mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(), thresholds=Thresholds(likely_fake=0.99, review=0.0)))
    shared = {"database_url": pg_url, "store_dir": str(tmp_path / "store"), "engine": {"models_poll_s": 0.5}}
    with ThreadPoolExecutor(2) as pool:  # started together: both register the same configured bundles
        servers = list(pool.map(lambda c: Server(c, tmp_path).start(), [server_config(bundles, tmp_path, **shared)
                                                                          for _ in range(2)]))
    photo = media_dir / "astronaut.jpg"
    try:
        config = tmp_path / f"serve-{servers[0].port}.yaml"
        assert main(["model", "register", str(candidate), "--config", str(config)]) == 0
        new = bundle_meta(candidate).version
        r = httpx.post(f"{servers[1].url}/v1/models/{new}/promote", headers={"X-API-Key": KEYS["admin"]})
        assert r.status_code == 200
        for server in servers:  # the promotion, made through one, reaches both (each says what it scores with)
            deadline = time.monotonic() + 30
            while f'version="{new}"' not in httpx.get(f"{server.url}/metrics",
                                                       headers={"X-API-Key": KEYS["prometheus"]}).text:
                assert time.monotonic() < deadline, f"{server.url} did not switch"
                time.sleep(0.2)  # polling a server's state, not racing a timeout
        assert photo_version(servers[0], photo) == new
    finally:
        for server in servers:
            server.kill()


def test_a_shadow_model_scores_beside_the_live_one_and_is_compared_on_reviewed_uploads(bundles, media_dir, tmp_path):
    torch.manual_seed(3)
    net = create_model("timm", backbone="resnet10t")
    candidate = save_bundle(tmp_path / "candidate", net, BundleMeta(  # its review threshold above its scores (~0.5)
        family="timm", model={"backbone": "resnet10t"}, input_size=64, mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(), thresholds=Thresholds(likely_fake=0.9, review=0.6), name="shadow-face"))
    live, new = bundle_meta(bundles[0]).version, bundle_meta(candidate).version
    server = Server(server_config(bundles, tmp_path, engine={"models_poll_s": 0.5}), tmp_path).start()
    config = tmp_path / f"serve-{server.port}.yaml"
    store = Store(server.cfg["database_url"])
    photo = media_dir / "astronaut.jpg"
    try:
        assert main(["model", "register", str(candidate), "--config", str(config)]) == 0
        assert main(["model", "shadow", new, "--config", str(config)]) == 0

        def shadowed(upload_id: str) -> bool:
            with store.engine.connect() as c:
                return c.execute(sa.text("SELECT count(*) FROM shadow_scores WHERE upload_id = :u"), {"u": upload_id}).scalar() == 1

        def send(channel: str) -> dict:
            r = httpx.post(f"{server.url}/v1/uploads", params={"wait": 60}, headers={"X-API-Key": KEYS["uploader"]},
                           files={"file": (photo.name, photo.read_bytes())},
                           data={"metadata": f'{{"channel": "{channel}"}}'}, timeout=90)
            return r.json()

        deadline = time.monotonic() + 30
        while not shadowed(send("warmup")["id"]):  # the server reads the registry every 0.5 s
            assert time.monotonic() < deadline, "the shadow model never scored"
        sent = [send(channel) for channel in ("a", "a", "a", "b", "b", "b")]
        deadline = time.monotonic() + 30
        while not all(shadowed(u["id"]) for u in sent):  # recorded after the live Verdict, on the batches' thread
            assert time.monotonic() < deadline, "shadow scores missing"
            time.sleep(0.1)  # polling the database, not racing a timeout
        assert all([m["version"] for m in u["verdict"]["models"] if m["modality"] == "visual"] == [live] for u in sent)
        alice = httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS["alice"]}, timeout=30)
        ours = {u["id"]: i for i, u in enumerate(sent)}
        for item in alice.get("/v1/review/items", params={"limit": 500}).json():
            if item["upload_id"] in ours:
                got = alice.post(f"/v1/review/items/{item['id']}/claim").json()["item"]
                label = "confirmed_fake" if ours[item["upload_id"]] % 2 == 0 else "cleared"
                alice.post(f"/v1/review/items/{item['id']}/decision",
                           json={"label": label, "reason": "checked", "version": got["version"]}).raise_for_status()
        alice.close()
        report = httpx.get(f"{server.url}/v1/models/{new}/comparison", headers={"X-API-Key": KEYS["admin"]}).json()
        overall = report["overall"]
        assert (overall["n"], overall["n_fake"], overall["n_real"]) == (6, 3, 3)  # the warm-up was never decided
        assert overall["decisions_changed"] == 6  # live: review at 0.0; the shadow's own threshold (0.6): clear
        assert overall["fpr_live"] == overall["fpr_shadow_at_live_threshold"] == 1.0
        assert set(report["by_channel"]) == {"a", "b"} and report["by_channel"]["a"]["n"] == 3
        assert set(report["by_media_type"]) == {"image"}
    finally:
        server.kill()
