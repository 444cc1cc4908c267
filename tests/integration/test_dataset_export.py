"""Reviewers' decisions exported as a dataset the training commands read: final labels after appeals,
open escalations left out, the uploader (from metadata, else the API key) as the group, media beside
labels.csv, resumable."""

from __future__ import annotations

import csv

import yaml
from conftest import in_process_server, server_config

from detector.cli import main
from detector.datasets import manifest


def decide(c, upload_id: str, kind: str, label: str, reason: str) -> None:
    (item,) = [i for i in c.get("/v1/review/items", params={"limit": 500}).json()
               if i["upload_id"] == upload_id and i["kind"] == kind]
    claimed = c.post(f"/v1/review/items/{item['id']}/claim").json()
    r = c.post(f"/v1/review/items/{item['id']}/decision",
               json={"label": label, "reason": reason, "version": claimed["item"]["version"]})
    assert r.status_code == 200, r.text


def test_decided_uploads_become_a_labelled_dataset(bundles, media_dir, tmp_path, capsys):
    cfg = server_config(bundles, tmp_path, audio="none")
    with in_process_server(cfg) as server:
        ids = {}
        with server.as_("uploader") as up:
            meta = {"astronaut.jpg": '{"channel": "shop"}', "astronaut.png": '{"channel": "shop", "uploader": "u7"}'}
            for name in ("astronaut.jpg", "astronaut.png", "astronaut.webp", "astronaut.bmp"):
                r = up.post("/v1/uploads", params={"wait": 60}, files={"file": (name, (media_dir / name).read_bytes())},
                            data={"metadata": meta.get(name, "{}")})
                assert r.json()["status"] == "scored", r.text
                ids[name] = r.json()["id"]
        with server.as_("alice") as alice, server.as_("bob") as bob, server.as_("uploader") as up:
            decide(alice, ids["astronaut.jpg"], "detection", "confirmed_fake", "seam at the jaw")
            decide(alice, ids["astronaut.png"], "detection", "cleared", "consistent lighting")
            decide(alice, ids["astronaut.webp"], "detection", "confirmed_fake", "warped ear")
            assert up.post(f"/v1/uploads/{ids['astronaut.webp']}/appeal", json={"reason": "it is me"}).status_code == 201
            decide(bob, ids["astronaut.webp"], "appeal", "overturned", "second photo matches")
            decide(alice, ids["astronaut.bmp"], "detection", "escalated", "needs a senior")  # still open
        (tmp_path / "serve.yaml").write_text(yaml.safe_dump(server.cfg))
    out = tmp_path / "reviewed"
    args = ["dataset", "export", "--config", str(tmp_path / "serve.yaml"), "--since", "2020-01-01", "--out", str(out)]
    assert main(args) == 0
    assert "3 uploads in" in capsys.readouterr().err
    rows = {r["upload_id"]: r for r in csv.DictReader((out / "labels.csv").open())}
    assert {u: int(r["label"]) for u, r in rows.items()} == {
        ids["astronaut.jpg"]: 1, ids["astronaut.png"]: 0, ids["astronaut.webp"]: 0}  # the appeal overturned it
    assert {u: r["group"] for u, r in rows.items()} == {  # the platform's uploader, else the API key's name
        ids["astronaut.jpg"]: "uploader", ids["astronaut.png"]: "uploader:u7", ids["astronaut.webp"]: "uploader"}
    assert rows[ids["astronaut.webp"]]["reviewers"] == "2"
    jpg = rows[ids["astronaut.jpg"]]
    assert (out / jpg["path"]).read_bytes() == (media_dir / "astronaut.jpg").read_bytes()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()}
    assert main(args) == 0  # a rerun copies nothing again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()} == before
    read = manifest("csv", out / "labels.csv")  # what `preprocess`/`evaluate --dataset csv` read
    assert sorted(r.label for r in read) == [0, 0, 1] and {r.group for r in read} == {"uploader:u7", "uploader"}


def test_the_export_groups_by_the_metadata_fields_it_is_told(bundles, media_dir, tmp_path):
    cfg = server_config(bundles, tmp_path, audio="none")
    with in_process_server(cfg) as server:
        meta = {"astronaut.jpg": '{"shop": "s1"}', "astronaut.png": '{"shop": "s1", "account": "a9"}',
                "astronaut.webp": "{}"}
        ids = {}
        with server.as_("uploader") as up:
            for name, m in meta.items():
                r = up.post("/v1/uploads", params={"wait": 60}, files={"file": (name, (media_dir / name).read_bytes())},
                            data={"metadata": m})
                ids[r.json()["id"]] = name
        with server.as_("alice") as alice:
            for upload_id in ids:
                decide(alice, upload_id, "detection", "cleared", "looks real")
        (tmp_path / "serve.yaml").write_text(yaml.safe_dump(server.cfg))
    assert main(["dataset", "export", "--config", str(tmp_path / "serve.yaml"), "--since", "2020-01-01",
                 "--out", str(tmp_path / "out"), "--group-by", "account,shop"]) == 0
    groups = {ids[r["upload_id"]]: r["group"] for r in csv.DictReader((tmp_path / "out" / "labels.csv").open())}
    assert groups == {"astronaut.png": "account:a9", "astronaut.jpg": "shop:s1", "astronaut.webp": "uploader"}
