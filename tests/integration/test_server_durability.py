"""Durability and scale-out: kill -9 mid-load, and servers sharing one PostgreSQL, for real."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import KEYS, Server, server_config

from serve.store import Store

pytestmark = pytest.mark.slow
UPLOADS = ["pan.mp4", "pan.mkv", "pan.webm", "silent.mp4", "astronaut.jpg", "astronaut.png", "chirp.wav", "coffee.mp4"]


def submit(url: str, path: Path) -> str:
    r = httpx.post(f"{url}/v1/uploads", content=path.read_bytes(), headers={"X-API-Key": KEYS["uploader"]}, timeout=60)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_all_scored(store: Store, ids: list[str], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(store.upload(i)["status"] in ("scored", "failed") for i in ids):
            return
        time.sleep(0.5)
    raise TimeoutError({i: store.upload(i)["status"] for i in ids})


def scored_events(store: Store, upload_id: str) -> int:
    return sum(e["action"] in ("scored", "failed") for e in store.audit(upload_id=upload_id))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_load_loses_nothing_and_scores_each_upload_once(backend, bundles, media_dir, tmp_path, request):
    db = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    cfg = server_config(bundles, tmp_path, sampling={"frames": 16}, **db)
    server = Server(cfg, tmp_path).start()
    store = Store(cfg["database_url"])
    ids = [submit(server.url, media_dir / n) for n in UPLOADS * 2]
    end = time.monotonic() + 120
    while sum(store.upload(i)["status"] == "scored" for i in ids) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    server.kill()  # SIGKILL to the server and its workers, mid-load
    left = [i for i in ids if store.upload(i)["status"] != "scored"]
    assert left, "everything finished before the kill: the test proves nothing"
    server = Server(cfg, tmp_path).start()  # same port, database and store
    try:
        wait_all_scored(store, ids)
    finally:
        server.kill()
    for i in ids:
        up = store.upload(i)
        assert up["status"] == "scored", up
        assert scored_events(store, i) == 1  # exactly once, though some were in flight at the kill


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_claims_are_exclusive_under_concurrency(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    store.migrate()
    ids = [store.add_upload(f"{n:064x}", 1, "image", None, {}, None, None, "t")[0]["id"] for n in range(40)]
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while jobs := store.claim_jobs(name, 3, lease_s=60):
            with lock:
                claimed.extend(j["id"] for j in jobs)
            for j in jobs:  # every job goes to review, so the queue fills too
                assert store.finish_job(j["id"], name, {"score": 0.5, "decision": "review"}, None, ["review"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, ["w1", "w2", "w3", "w4"]))
    assert sorted(claimed) == sorted(ids)  # each job once, none missed
    items: list[int] = []

    def reviewer(name: str) -> None:
        while item := store.claim_item(name, lease_s=60):
            with lock:
                items.append(item["id"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reviewer, ["r1", "r2", "r3", "r4"]))
    assert len(items) == len(set(items)) == 40
    assert store.claim_jobs("late", 5, 60) == [] and store.claim_item("late", 60) is None


def test_two_servers_sharing_postgresql_split_the_work(bundles, media_dir, tmp_path, pg_url):
    shared = {"database_url": pg_url, "store_dir": str(tmp_path / "store")}
    cfgs = [server_config(bundles, tmp_path, **shared) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # started together: migrations must not collide
        servers = list(pool.map(lambda c: Server(c, tmp_path).start(), cfgs))
    try:
        store = Store(pg_url)
        ids = [submit(servers[k % 2].url, media_dir / n) for k, n in enumerate(UPLOADS * 2)]
        wait_all_scored(store, ids)
        assert all(scored_events(store, i) == 1 for i in ids)
        owners = {store.upload(i)["owner"] for i in ids}
        assert len(owners) == 2, owners  # both engines took jobs from the shared queue
        claimed: dict[str, list[int]] = {"alice": [], "bob": []}

        def review(name: str, server: Server) -> None:
            with httpx.Client(headers={"X-API-Key": KEYS[name]}, timeout=60) as c:
                while (r := c.post(f"{server.url}/v1/review/claim")).status_code == 200:
                    claimed[name].append(r.json()["item"]["id"])

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(review, ["alice", "bob"], servers))
        everything = claimed["alice"] + claimed["bob"]
        assert len(everything) == len(set(everything)) == len(store.items("claimed", limit=500))
        assert claimed["alice"] and claimed["bob"]
    finally:
        for s in servers:
            s.kill()
    shutil.rmtree(tmp_path / "store", ignore_errors=True)


def test_an_upload_that_decodes_too_long_fails_alone(bundles, media_dir, tmp_path):
    cfg = server_config(bundles, tmp_path, sampling={"frames": 64}, engine={"job_timeout_s": 0.05})
    server = Server(cfg, tmp_path).start()
    try:
        slow = submit(server.url, media_dir / "pan.mp4")
        store = Store(cfg["database_url"])
        wait_all_scored(store, [slow], timeout=60)
        up = store.upload(slow)
        assert up["status"] == "failed" and '"reason": "timeout"' in up["reason"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        other = submit(server.url, media_dir / "chirp.wav")  # the engine carries on with new workers
        wait_all_scored(store, [other], timeout=60)
        assert store.upload(other)["status"] in ("scored", "failed")
    finally:
        server.kill()
