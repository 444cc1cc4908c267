"""Durability and scale-out: kill -9 mid-load, and servers sharing one PostgreSQL, for real."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from conftest import KEYS, Server, server_config

from serve.store import Store

pytestmark = pytest.mark.slow
class Upload(NamedTuple):
    id: str
    path: Path
    key: str


UPLOADS = ["pan.mp4", "pan.mkv", "pan.webm", "silent.mp4", "astronaut.jpg", "astronaut.png", "chirp.wav", "coffee.mp4"]


def post(url: str, path: Path, key: str, wait: float = 0) -> httpx.Response:
    return httpx.post(f"{url}/v1/uploads", content=path.read_bytes(), params={"wait": wait}, timeout=wait + 60,
                      headers={"X-API-Key": KEYS["uploader"], "Idempotency-Key": key})


def submit(url: str, path: Path) -> Upload:
    """Queue an upload under a fresh Idempotency-Key, by which `finished` finds it again."""
    key = uuid.uuid4().hex
    r = post(url, path, key)
    assert r.status_code == 202, r.text
    return Upload(r.json()["id"], path, key)


def finished(url: str, up: Upload, timeout: float = 300) -> dict:
    """The upload once scored or failed: its Idempotency-Key again, with `wait` (the server says when)."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        r = post(url, up.path, up.key, wait=left)
        if r.status_code == 200:
            return r.json()
    raise TimeoutError(up)


def wait_all_scored(url: str, ups: list[Upload]) -> None:
    for up in ups:
        finished(url, up)


def scored_events(store: Store, upload_id: str) -> int:
    return sum(e["action"] in ("scored", "failed") for e in store.audit.events(upload_id=upload_id))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_load_loses_nothing_and_scores_each_upload_once(backend, bundles, media_dir, tmp_path, request):
    db = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    cfg = server_config(bundles, tmp_path, sampling={"frames": 16}, **db)
    server = Server(cfg, tmp_path).start()
    store = Store(cfg["database_url"])
    ups = [submit(server.url, media_dir / n) for n in UPLOADS]
    assert finished(server.url, ups[0])["status"] == "scored"  # the first: the others (videos among them) still going
    server.kill()  # SIGKILL to the server and its workers, mid-load
    left = [up for up in ups if store.uploads.get(up.id)["status"] != "scored"]
    assert left, "everything finished before the kill: the test proves nothing"
    server = Server(cfg, tmp_path).start()  # same port, database and store
    try:
        wait_all_scored(server.url, ups)
    finally:
        server.kill()
    for i in [up.id for up in ups]:
        up = store.uploads.get(i)
        assert up["status"] == "scored", up
        assert scored_events(store, i) == 1  # exactly once, though some were in flight at the kill


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_claims_are_exclusive_under_concurrency(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    store.migrate()
    ids = [store.uploads.add(f"{n:064x}", 1, "image", None, {}, None, None, "t")[0]["id"] for n in range(40)]
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while jobs := store.uploads.claim(name, 3, lease_s=60, max_attempts=2)[0]:
            with lock:
                claimed.extend(j["id"] for j in jobs)
            for j in jobs:  # every job goes to review, so the queue fills too
                assert store.uploads.finish(j["id"], name, {"score": 0.5, "decision": "review"}, None, ["review"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, ["w1", "w2", "w3", "w4"]))
    assert sorted(claimed) == sorted(ids)  # each job once, none missed
    items: list[int] = []

    def reviewer(name: str) -> None:
        while item := store.review.claim(name, lease_s=60):
            with lock:
                items.append(item["id"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reviewer, ["r1", "r2", "r3", "r4"]))
    assert len(items) == len(set(items)) == 40
    assert store.uploads.claim("late", 5, 60, 2) == ([], []) and store.review.claim("late", 60) is None


def test_two_servers_sharing_postgresql_split_the_work(bundles, media_dir, tmp_path, pg_url):
    # two jobs in flight each: the first engine to wake cannot take the whole queue
    shared = {"database_url": pg_url, "store_dir": str(tmp_path / "store"), "engine": {"max_in_flight": 2}}
    cfgs = [server_config(bundles, tmp_path, **shared) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # started together: migrations must not collide
        servers = list(pool.map(lambda c: Server(c, tmp_path).start(), cfgs))
    try:
        store = Store(pg_url)
        ups = [submit(servers[k % 2].url, media_dir / n) for k, n in enumerate(UPLOADS * 2)]
        wait_all_scored(servers[0].url, ups)
        ids = [up.id for up in ups]
        assert all(scored_events(store, i) == 1 for i in ids)
        owners = {store.uploads.get(i)["owner"] for i in ids}
        assert len(owners) == 2, owners  # both engines took jobs from the shared queue
        claimed: dict[str, list[int]] = {"alice": [], "bob": []}

        def review(name: str, server: Server) -> None:
            with httpx.Client(headers={"X-API-Key": KEYS[name]}, timeout=60) as c:
                while (r := c.post(f"{server.url}/v1/review/claim")).status_code == 200:
                    claimed[name].append(r.json()["item"]["id"])

        for name, server in zip(["alice", "bob"], servers):  # each holds one before they race for the rest
            with httpx.Client(headers={"X-API-Key": KEYS[name]}, timeout=60) as c:
                claimed[name].append(c.post(f"{server.url}/v1/review/claim").json()["item"]["id"])
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(review, ["alice", "bob"], servers))
        everything = claimed["alice"] + claimed["bob"]
        assert len(everything) == len(set(everything)) == len(store.review.items("claimed", limit=500))
        assert claimed["alice"] and claimed["bob"]
    finally:
        for s in servers:
            s.kill()
    shutil.rmtree(tmp_path / "store", ignore_errors=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_upload_that_keeps_killing_its_server_fails_after_max_attempts(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    store.migrate()
    poison = store.uploads.add("a" * 64, 1, "video", None, {}, None, None, "t")[0]
    for attempt in (1, 2):  # each claim's server dies at once: its lease is already over
        jobs, exhausted = store.uploads.claim(f"server{attempt}", 1, lease_s=-1, max_attempts=2)
        assert [(j["id"], j["attempts"]) for j in jobs] == [(poison["id"], attempt)] and exhausted == []
    other = store.uploads.add("b" * 64, 1, "image", None, {}, None, None, "t")[0]
    jobs, exhausted = store.uploads.claim("server3", 5, lease_s=60, max_attempts=2)
    assert exhausted == [poison["id"]] and [j["id"] for j in jobs] == [other["id"]]
    failed = store.uploads.get(poison["id"])
    assert failed["status"] == "failed" and '"worker_crash"' in failed["reason"] and failed["attempts"] == 2
    assert [e["action"] for e in store.audit.events(poison["id"])] == ["uploaded", "failed"]
