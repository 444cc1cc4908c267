"""The whole loop on two real servers sharing a PostgreSQL database: photos uploaded, decided in the review
API, exported, a face bundle fine-tuned on them, registered and shadowed, new uploads scored by both models
and decided, the comparison read, the candidate promoted while uploads arrive, then rolled back. Every
step audited; no upload lost or scored twice."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from conftest import KEYS, Server, face_pair, server_config
from PIL import Image

from detector.bundle import bundle_meta
from detector.cli import main
from detector.config import FaceConfig
from detector.datasets import hash_split, manifest
from detector.frontend.faces import FaceDetector
from serve.store import Store

pytestmark = pytest.mark.slow


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def scores_with(server: Server, version: str) -> bool:
    """Whether the server says (in its metrics) that `version` is its live visual model."""
    text = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": KEYS["prometheus"]}, timeout=30).text
    return f'version="{version}"' in text


def until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)  # polling a server's state, not racing a timeout


def test_reviewed_uploads_train_a_candidate_that_is_shadowed_compared_promoted_and_rolled_back(
        bundles, tmp_path, pg_url):
    rng, faces = np.random.default_rng(7), FaceDetector(FaceConfig(device="cpu"))
    people = [f"u{i}" for i in range(300)]  # the platform's uploaders, named in each upload's metadata
    val = [u for u in people if hash_split(f"uploader:{u}") == "val"][:3]  # held back by finetune: thresholds
    train = [u for u in people if hash_split(f"uploader:{u}") == "train"][:19]
    first, later = val + train[:13], train[13:]  # this month's traffic; next month's, while a candidate shadows
    photos = {u: [jpeg(image) for image in face_pair(rng, faces)] for u in first + later}  # [real, fake]

    shared = {"database_url": pg_url, "store_dir": str(tmp_path / "store"),
              "engine": {"models_poll_s": 0.5, "shadow_share": 1.0},
              "review": {"queue_decisions": ["likely_fake", "review", "clear"]}}  # every scored upload to a person
    with ThreadPoolExecutor(2) as pool:
        servers = list(pool.map(lambda c: Server(c, tmp_path).start(),
                                [server_config(bundles, tmp_path, **shared) for _ in range(2)]))
    config = str(tmp_path / f"serve-{servers[0].port}.yaml")
    sent: list[str] = []

    def send(i: int, user: str, label: int) -> dict:
        r = httpx.post(f"{servers[i % 2].url}/v1/uploads", params={"wait": 60},
                       headers={"X-API-Key": KEYS["uploader"]}, timeout=90,
                       files={"file": (f"{user}_{label}.jpg", photos[user][label])},
                       data={"metadata": json.dumps({"uploader": user, "channel": ("feed", "ads")[i % 2]})})
        assert r.status_code in (200, 201) and r.json()["status"] == "scored", r.text
        sent.append(r.json()["id"])
        return r.json()

    def decide(truth: dict[str, int]) -> None:  # a reviewer on replica 1, by each upload's true label
        with servers[1].as_("alice") as alice:
            for item in alice.get("/v1/review/items", params={"limit": 500}).json():
                if item["upload_id"] in truth:
                    got = alice.post(f"/v1/review/items/{item['id']}/claim").json()["item"]
                    label = ("cleared", "confirmed_fake")[truth[item["upload_id"]]]
                    alice.post(f"/v1/review/items/{item['id']}/decision", json={
                        "label": label, "reason": "compared with the uploader's other photos",
                        "version": got["version"]}).raise_for_status()

    def visual(upload: dict) -> str:
        return {m["modality"]: m["version"] for m in upload["verdict"]["models"]}["visual"]

    try:
        live = bundle_meta(bundles[0]).version
        since = datetime.now(timezone.utc).strftime("%Y-%m-%d")  # before the first decision, should midnight pass
        truth = {send(i, u, label)["id"]: label for i, (u, label) in enumerate(
            (u, label) for u in first for label in (0, 1))}
        decide(truth)

        data = tmp_path / "reviewed"
        assert main(["dataset", "export", "--config", config, "--since", since, "--out", str(data)]) == 0
        rows = manifest("csv", data / "labels.csv")
        assert len(rows) == 32 and {r.group for r in rows} == {f"uploader:{u}" for u in first}

        assert main(["finetune", "--from", str(bundles[0]), "--data", str(data), "--out", str(tmp_path / "ft"),
                     "--epochs", "1", "--workers", "0"]) == 0
        built = bundle_meta(tmp_path / "ft" / "bundle")
        new, name = built.version, built.name
        assert main(["model", "register", str(tmp_path / "ft" / "bundle"), "--config", config]) == 0
        assert main(["model", "shadow", new, "--config", config]) == 0

        store = Store(pg_url)

        def shadowed(upload_id: str) -> bool:
            with store.engine.connect() as c:
                return c.execute(sa.text("SELECT count(*) FROM shadow_scores WHERE upload_id = :u AND version = :v"),
                                 {"u": upload_id, "v": new}).scalar() == 1

        for server in servers:  # each reads the registry every 0.5 s, and says when it has
            until(lambda: f"in the shadow: visual {name}@{new}" in server.read_log(), f"{server.url} took no shadow")
        truth = {}
        for i, (u, label) in enumerate((u, label) for u in later for label in (0, 1)):
            upload = send(i, u, label)
            assert visual(upload) == live  # the shadow model never decides
            truth[upload["id"]] = label
        until(lambda: all(shadowed(u) for u in truth), "shadow scores missing")
        decide(truth)
        with servers[0].as_("admin") as admin:
            report = admin.get(f"/v1/models/{new}/comparison").json()
        assert (report["overall"]["n"], report["overall"]["n_fake"], report["overall"]["n_real"]) == (12, 6, 6)
        assert report["overall"]["auc_live"] is not None and report["overall"]["auc_shadow"] is not None
        assert set(report["by_channel"]) == {"feed", "ads"}

        with ThreadPoolExecutor(4) as pool:  # uploads arriving on both replicas while they switch
            during = [pool.submit(send, i, later[i % 6], i % 2) for i in range(8)]
            with servers[0].as_("admin") as admin:
                assert admin.post(f"/v1/models/{new}/promote").status_code == 200
            versions = {visual(f.result()) for f in during}
        assert versions <= {live, new}
        for server in servers:
            until(lambda: scores_with(server, new), f"{server.url} did not switch to the candidate")
        assert visual(send(0, later[1], 0)) == new and visual(send(1, later[1], 1)) == new

        assert main(["model", "rollback", "visual", "--config", config]) == 0
        for server in servers:
            until(lambda: scores_with(server, live), f"{server.url} did not roll back")
        assert visual(send(0, later[2], 0)) == live

        with store.engine.connect() as c:
            actions = c.execute(sa.text("SELECT actor, action FROM audit_events WHERE action LIKE 'model_%' "
                                        "ORDER BY id")).all()
            scored = dict(c.execute(sa.text("SELECT upload_id, count(*) FROM audit_events WHERE action = 'scored' "
                                            "GROUP BY upload_id")).all())
            statuses = dict(c.execute(sa.text("SELECT id, status FROM uploads")).all())
            exported = c.execute(sa.text("SELECT actor, detail FROM audit_events WHERE action = 'dataset_exported'")).all()
        assert [a for _, a in actions][-4:] == ["model_registered", "model_shadowed", "model_promoted",
                                                 "model_rolled_back"]
        assert len(exported) == 1 and exported[0][0].startswith("cli:") and exported[0][1]["exported"] == 32
        assert ("admin", "model_promoted") in actions
        assert set(statuses) == set(sent) and set(statuses.values()) == {"scored"}  # nothing lost
        assert set(scored) == set(sent) and set(scored.values()) == {1}  # nor scored twice, across both switches
    finally:
        for server in servers:
            server.kill()
