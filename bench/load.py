"""Load on the detection server: cross-request batching against `max_batch_size: 1`.

    .venv/bin/python bench/load.py [--clients 32] [--uploads 96] [--batches 32 8 1] [--rounds 1]
                                   [--workers 2] [--files PATH...]

Starts the server (`python -m detector.cli serve`, so a source tree on PYTHONPATH will do) once per
`engine.max_batch_size` in --batches on loopback (same machine, same run; 1 is the unbatched
baseline; --rounds repeats them in turn, and the ratios are of median throughputs, since one run on
a shared VM can be off by a third), each time with N concurrent clients uploading --files (default:
the photos of ../shared/data/faces and clips of ../shared/data/video) with `?wait=` until --uploads
are answered: uploads/s, p50/p99 latency, the mean classifier batch size (from /metrics), 5xx count,
and whether every upload was accounted for; a run where one was not fails the bench (exit 1). The
visual model is an untrained efficientnet_b0 at 224 px: speed does not depend on its weights. Each
server's log is kept in --logs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KEY = "bench-key-0123456789abcdef"
MEDIA = {".jpg", ".jpeg", ".png", ".mp4"}


def start(folder: Path, bundle: Path, batch: int, wait_ms: float, workers: int, log: Path,
          ready_s: float = 180) -> tuple[subprocess.Popen, str]:
    """A server on a free loopback port, ready; its output goes to `log`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"port": port, "database_url": f"sqlite:///{folder / f'b{batch}.db'}", "store_dir": str(folder / f"store{batch}"),
           "visual": str(bundle), "engine": {"workers": workers, "max_batch_size": batch, "max_wait_ms": wait_ms,
                                             "max_in_flight": 32},
           "api_keys": {"bench": {"key": KEY, "roles": ["submit", "metrics"]}}, "max_wait_s": 600,
           "provenance": {"read": importlib.util.find_spec("c2pa") is not None},  # a bare GPU machine may lack it
           "webhooks": {"secret": "bench-webhook-secret-0123456789"}}
    (folder / "serve.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "detector.cli", "serve", "--config", str(folder / "serve.yaml")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {_tail(log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise TimeoutError(f"the server was not ready in {ready_s:.0f} s: {_tail(log)}")


def _tail(log: Path, lines: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"


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
            "accounted": done, "answered_200": statuses.count(200),
            "answered": sum(s in (200, 202) for s in statuses)}


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
    ap.add_argument("--workers", type=int, default=2, help="the server's front-end worker processes")
    ap.add_argument("--files", type=Path, nargs="+", help="photos and clips to upload (default: ../shared/data's)")
    ap.add_argument("--logs", type=Path, default=Path("out/load"), help="folder for the servers' logs")
    args = ap.parse_args()
    files = args.files or sorted(p for d in ("faces", "video") for p in (DATA / d).rglob("*") if p.suffix.lower() in MEDIA)
    if not files:
        sys.exit(f"no media: name some with --files, or put ../shared/data beside the checkout ({DATA})")
    args.logs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]
    print(f"{len(files)} files ({sum(p.suffix == '.mp4' for p in files)} clips), {args.clients} clients, "
          f"{args.uploads} uploads per run", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp) / "bundle")
        results: dict[int, list[dict]] = {b: [] for b in args.batches}
        lost = 0
        for n, batch in ((n, b) for n in range(args.rounds) for b in args.batches):
            folder = Path(tmp) / f"run{n}-{batch}"
            folder.mkdir()
            proc, url = start(folder, bundle, batch, args.max_wait_ms, args.workers, args.logs / f"server-{n}-{batch}.log")
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
            if r["answered"] < args.uploads or r["accounted"] < r["accepted"]:
                lost += 1
                print(f"max_batch_size {batch}: FAILED: {args.uploads} uploads sent, {r['answered']} accepted, "
                      f"{r['accounted']} of {r['accepted']} ids scored or failed (log: {args.logs / f'server-{n}-{batch}.log'})")
        rate = {b: float(np.median([r["uploads_per_s"] for r in rs])) for b, rs in results.items()}
        for batch in (b for b in args.batches if b != 1 and 1 in rate):
            print(f"max_batch_size {batch} / unbatched: {rate[batch] / rate[1]:.2f}x (median of {args.rounds} rounds: "
                  f"{rate[batch]:.2f} / {rate[1]:.2f} uploads/s)")
    if lost:
        sys.exit(f"{lost} run(s) did not account for every upload")


if __name__ == "__main__":
    main()
