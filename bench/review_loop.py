"""The review loop on ../shared/data, through a real server and the commands a team runs.

A face model trained by the starter recipe on every face source but DFDC goes live (a team's traffic is
a source the shipped model never saw; the shipped one saw DFDC). DFDC face crops arrive as uploads, the
actor of each original video as the `uploader` (so a fake and its original share one), and a reviewer
labels every queued one through the review API (the server queues every decision, `clear` too: full
review; only uploads with no face found, `no_signal`, stay out). Then `dataset export`, `finetune` (the public crops but DFDC's mixed in), `model register`,
`model shadow`; the next month's uploads (other actors) are scored by both and labelled; `model compare`
is the report; `model promote` and `model rollback` end it.

    .venv/bin/python bench/review_loop.py [--first 300] [--later 200] [--cache out/starter/face/cache]

`--cache`: the starter face crops (`deepfake-detect starter face` cuts them on its way). Writes
out/review_loop/: the live bundle, the export, the candidate, comparison.json, and the server's log.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from detector.datasets import manifest  # noqa: E402
from detector.recipes import face  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
EXE = Path(sys.executable).with_name("deepfake-detect")
KEYS = {"uploader": "submit", "reviewer": "review", "admin": "admin"}


def live_bundle(cache: Path, out: Path) -> Path:
    """The starter recipe on every face source but DFDC (its crops are the test split, unused here)."""
    bundle = out / "live"
    if not (bundle / "bundle.json").is_file():
        face.train(cache, out / "live_run", face.RECIPE, bundle=bundle, holdout=face.FOLDS["dfdc"][0])
    return bundle


def public_without_dfdc(cache: Path, out: Path) -> Path:
    """A crop cache of the public sources but DFDC, for `finetune --also` (the traffic must not leak in)."""
    also = out / "public_no_dfdc"
    also.mkdir(parents=True, exist_ok=True)
    if not (also / "crops").exists():
        (also / "crops").symlink_to((cache / "crops").resolve())
    dfdc = re.compile(face.FOLDS["dfdc"][0])
    lines = [line for line in (cache / "index.jsonl").read_text().splitlines()
             if line and not dfdc.search(json.loads(line)["path"])]
    (also / "index.jsonl").write_text("\n".join(lines) + "\n")
    return also


def pairs(data: Path) -> list[tuple[str, list[tuple[Path, int]]]]:
    """DFDC's (actor, [(original, 0), (fake, 1)]) in the manifest's order."""
    groups: dict[str, list[tuple[Path, int]]] = {}
    for row in manifest("csv", data / "images" / "labels.csv"):
        if "/dfdc_faces/" in row.path:
            groups.setdefault(row.group.split("/")[-1], []).append((Path(row.path), row.label))
    return [(g, files) for g, files in groups.items() if sorted(label for _, label in files) == [0, 1]]


class Loop:
    """One server over the live bundle, and the commands run against its settings."""

    def __init__(self, out: Path, visual: Path):
        self.out, self.config = out, out / "serve.yaml"
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.keys = {name: f"{name}-bench-key-0123456789" for name in KEYS}
        self.config.write_text(yaml.safe_dump({
            "port": port, "database_url": f"sqlite:///{out / 'serve.db'}", "store_dir": str(out / "store"),
            "visual": str(visual), "audio": "none", "engine": {"models_poll_s": 1, "shadow_share": 1.0},
            "review": {"queue_decisions": ["likely_fake", "review", "clear"]}, "webhooks": {"secret": "bench-only-secret"},
            "api_keys": {n: {"key": self.keys[n], "roles": [role]} for n, role in KEYS.items()}}))
        self.log = (out / "serve.log").open("ab")
        self.proc = subprocess.Popen([str(EXE), "serve", "--config", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while self.proc.poll() is None and not self._ready():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if self.proc.poll() is not None or not self._ready():
            self.close()
            raise RuntimeError(f"the server did not start: see {out / 'serve.log'}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[name]}, timeout=300)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """A `deepfake-detect` command on this server's settings (it must succeed)."""
        done = subprocess.run([str(EXE), *args, "--config", str(self.config)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"deepfake-detect {' '.join(args)}: {done.stderr[-2000:]}")
        return done

    def upload(self, month: list[tuple[str, list[tuple[Path, int]]]], channel: str) -> dict[str, int]:
        """Every file of these actors uploaded (four at a time); upload id -> true label."""
        def send(actor: str, path: Path, label: int) -> tuple[str, int]:
            with self.client("uploader") as c:
                r = c.post("/v1/uploads", params={"wait": 240}, files={"file": (path.name, path.read_bytes())},
                           data={"metadata": json.dumps({"uploader": actor, "channel": channel})})
                r.raise_for_status()
                return r.json()["id"], label

        jobs = [(actor, path, label) for actor, files in month for path, label in files]
        with ThreadPoolExecutor(4) as pool:
            truth = dict(pool.map(lambda j: send(*j), jobs))
        print(f"  {len(truth)} uploads ({channel})", flush=True)
        return truth

    def review(self, truth: dict[str, int]) -> int:
        """The reviewer claims every queued item and labels it by the file's truth; how many were decided."""
        decided = 0
        with self.client("reviewer") as c:
            while (r := c.post("/v1/review/claim")).status_code == 200:
                item = r.json()["item"]
                label = ("cleared", "confirmed_fake")[truth[item["upload_id"]]] if item["upload_id"] in truth \
                    else "cleared"
                c.post(f"/v1/review/items/{item['id']}/decision", json={
                    "label": label, "reason": "DFDC ground truth", "version": item["version"]}).raise_for_status()
                decided += item["upload_id"] in truth
        return decided

    def wait_for(self, line: str, timeout: float = 60) -> None:
        """Until the server's log says `line` (it reads the registry every second)."""
        deadline = time.monotonic() + timeout
        while line not in (self.out / "serve.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server never logged {line!r}")
            time.sleep(0.5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--cache", type=Path, default=ROOT / "out" / "starter" / "face" / "cache")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "review_loop")
    p.add_argument("--first", type=int, default=300, help="actors (a real and a fake each) in the first month")
    p.add_argument("--later", type=int, default=200, help="other actors, in the month the candidate shadows")
    p.add_argument("--epochs", default="2", help="finetune --epochs")
    p.add_argument("--lr", default="1e-4", help="finetune --lr")
    args = p.parse_args()
    if not (args.cache / "index.jsonl").is_file():
        sys.exit(f"{args.cache}: no face crops; `deepfake-detect starter face` cuts them")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in ("serve.db", "serve.db-wal", "serve.db-shm"):
        (args.out / stale).unlink(missing_ok=True)
    everyone = pairs(args.data)
    first, later = everyone[:args.first], everyone[args.first:args.first + args.later]

    print("live model: the starter recipe without DFDC", flush=True)
    live = live_bundle(args.cache, args.out)
    loop = Loop(args.out, live)
    try:
        since = datetime.now(timezone.utc).strftime("%Y-%m-%d")  # before the first decision, should midnight pass
        print("month 1: uploads, each queued one reviewed", flush=True)
        print(f"  {loop.review(loop.upload(first, 'feed'))} decided", flush=True)
        reviewed = args.out / "reviewed"
        print(loop.cli("dataset", "export", "--since", since, "--out", str(reviewed)).stderr.strip().splitlines()[-1],
              flush=True)
        started = time.monotonic()
        subprocess.run([str(EXE), "finetune", "--from", str(live), "--data", str(reviewed), "--also",
                        str(public_without_dfdc(args.cache, args.out)), "--out", str(args.out / "candidate"),
                        "--epochs", args.epochs, "--lr", args.lr],
                       check=True)
        print(f"finetune: {time.monotonic() - started:.0f} s", flush=True)
        candidate = json.loads((args.out / "candidate" / "bundle" / "bundle.json").read_text())
        version = candidate["version"]
        loop.cli("model", "register", str(args.out / "candidate" / "bundle"))
        loop.cli("model", "shadow", version)
        loop.wait_for(f"in the shadow: visual {candidate['name']}@{version}")
        print("month 2: uploads scored by both, each queued one reviewed", flush=True)
        print(f"  {loop.review(loop.upload(later, 'feed'))} decided", flush=True)
        report = json.loads(loop.cli("model", "compare", version).stdout)
        (args.out / "comparison.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report["overall"], indent=2), flush=True)
        loop.cli("model", "promote", version)
        loop.cli("model", "rollback", "visual")
        print(loop.cli("model", "list").stdout, flush=True)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
