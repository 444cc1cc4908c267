"""Load on the detection server: cross-request batching against `max_batch_size: 1`.

    .venv/bin/python bench/load.py [--clients 32] [--uploads 96] [--batches 32 8 1] [--rounds 1]

Starts `deepfake-detect serve` once per `engine.max_batch_size` in --batches on loopback (same
machine, same run; 1 is the unbatched baseline; --rounds repeats them in turn, and the ratios
are of median throughputs, since one run on a shared VM can be off by a third), each time with N
concurrent clients uploading the real photos of ../shared/data/faces and clips of
../shared/data/video with `?wait=` until --uploads are answered: uploads/s, p50/p99 latency, the
mean classifier batch size (from /metrics), 5xx count, and whether every upload was accounted for.
The visual model is an untrained efficientnet_b0 at 224 px: speed does not depend on its weights.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score import make_bundle  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KEY = "bench-key-0123456789abcdef"


def start(folder: Path, bundle: Path, batch: int, wait_ms: float) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"port": port, "database_url": f"sqlite:///{folder / f'b{batch}.db'}", "store_dir": str(folder / f"store{batch}"),
           "visual": str(bundle), "engine": {"workers": 2, "max_batch_size": batch, "max_wait_ms": wait_ms,
                                             "max_in_flight": 32},
           "api_keys": {"bench": {"key": KEY, "roles": ["submit"]}}, "max_wait_s": 600,
           "webhooks": {"secret": "bench-webhook-secret-0123456789"}}
    (folder / "serve.yaml").write_text(yaml.safe_dump(cfg))
    exe = Path(sys.executable).with_name("deepfake-detect")
    proc = subprocess.Popen([str(exe), "serve", "--config", str(folder / "serve.yaml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError("server did not start")


async def load(url: str, files: list[Path], clients: int, uploads: int) -> dict:
    todo = iter(range(uploads))
    latencies, statuses, ids = [], [], set()

    async def client(c: httpx.AsyncClient) -> None:
        for i in todo:
            path = files[i % len(files)]
            t0 = time.perf_counter()
            r = await c.post(f"{url}/v1/uploads", params={"wait": 600}, content=path.read_bytes())
            statuses.append(r.status_code)
            if r.status_code in (200, 202):
                ids.add(r.json()["id"])
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=900) as c:
        before = _batches((await c.get(f"{url}/metrics")).text)
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        took = time.perf_counter() - start
        done = 0
        for uid in ids:  # every accepted upload is scored or failed with a reason
            done += (await c.get(f"{url}/v1/uploads/{uid}")).json()["status"] in ("scored", "failed")
        after = _batches((await c.get(f"{url}/metrics")).text)
    total, count = after[0] - before[0], after[1] - before[1]
    lat = np.array(latencies)
    return {"uploads_per_s": uploads / took, "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
            "mean_batch": total / max(count, 1), "5xx": sum(s >= 500 for s in statuses), "accepted": len(ids),
            "accounted": done, "answered_200": statuses.count(200)}


def _batches(metrics: str) -> tuple[float, float]:
    """(crops, model calls) of the visual model so far."""
    found = [re.search(rf'deepfake_batch_size_{k}{{model="visual"}} (\S+)', metrics) for k in ("sum", "count")]
    return tuple(float(m.group(1)) if m else 0.0 for m in found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--uploads", type=int, default=96)
    ap.add_argument("--max-wait-ms", type=float, default=20)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 8, 1], help="max_batch_size values; include 1")
    ap.add_argument("--rounds", type=int, default=1, help="run every batch size this many times, in turn")
    args = ap.parse_args()
    files = sorted(p for p in (DATA / "faces").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files += sorted((DATA / "video").rglob("*.mp4"))
    if not files:
        sys.exit(f"no media under {DATA}")
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]
    print(f"{len(files)} files ({sum(p.suffix == '.mp4' for p in files)} clips), {args.clients} clients, "
          f"{args.uploads} uploads per run", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp) / "bundle")
        results: dict[int, list[dict]] = {b: [] for b in args.batches}
        for n, batch in ((n, b) for n in range(args.rounds) for b in args.batches):
            folder = Path(tmp) / f"run{n}-{batch}"
            folder.mkdir()
            proc, url = start(folder, bundle, batch, args.max_wait_ms)
            try:
                asyncio.run(load(url, files[:8], args.clients, 16))  # warm-up: workers, first calls
                r = asyncio.run(load(url, files, args.clients, args.uploads))
                results[batch].append(r)
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=60)
            print(f"max_batch_size {batch:>3}: {r['uploads_per_s']:.2f} uploads/s, p50 {r['p50_s']:.1f} s, "
                  f"p99 {r['p99_s']:.1f} s, mean batch {r['mean_batch']:.1f}, 5xx {r['5xx']}, "
                  f"accounted {r['accounted']}/{r['accepted']}", flush=True)
        rate = {b: float(np.median([r["uploads_per_s"] for r in rs])) for b, rs in results.items()}
        for batch in (b for b in args.batches if b != 1 and 1 in rate):
            print(f"max_batch_size {batch} / unbatched: {rate[batch] / rate[1]:.2f}x (median of {args.rounds} rounds: "
                  f"{rate[batch]:.2f} / {rate[1]:.2f} uploads/s)")


if __name__ == "__main__":
    main()
