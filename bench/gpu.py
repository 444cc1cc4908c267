"""The GPU table: versions, classifier crops/s by batch and precision, front-end and Scorer frames/s,
and server batching against unbatched, on whatever device this machine has (CUDA parts skipped
without one). Exits 1 when a section failed (its row says why; the others still run).

    python bench/gpu.py [--out out/gpu_check.md] [--clips PATH...] [--photos PATH...] [--workers N]
                        [--load-rounds 1] [--no-load]

Run by `bench/gpu_check.sh`, which runs the CUDA tests first. The classifier is an untrained
efficientnet_b0 at 224 px (speed does not depend on weights); clips default to ../shared/data/video
and photos (uploaded beside the clips in the load run) to ../shared/data/faces. The Scorer and the
server read uploads in `--workers` processes (default: the machine's cores less two, 2 to 14).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from score import make_bundle  # noqa: E402
from detector.config import FaceConfig, SamplingConfig  # noqa: E402
from detector.frontend.faces import FaceDetector  # noqa: E402
from detector.frontend.media import iter_frames  # noqa: E402
from detector.frontend.provenance import ProvenancePolicy  # noqa: E402
from detector.frontend.scan import scan_many  # noqa: E402
from detector.scoring.scorer import Scorer  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PHOTOS = {".jpg", ".jpeg", ".png"}
C2PA = importlib.util.find_spec("c2pa") is not None  # a bare GPU machine may lack it: manifests are then not read


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({os.cpu_count()} CPU cores)"
    return f"CPU only ({os.cpu_count()} cores)"


def version_rows() -> list[tuple[str, str]]:
    rows = [("python / torch", f"{platform.python_version()} / {torch.__version__}")]
    if torch.cuda.is_available():
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            driver = "? (nvidia-smi did not answer)"
        rows.append(("CUDA (torch's build) / cuDNN / driver",
                     f"{torch.version.cuda} / {torch.backends.cudnn.version()} / {driver}"))
    return rows


def rate(step, items: int, seconds: float = 1.5) -> float:
    """Items per second of `step()` (one warm-up call, then as many calls as fit in `seconds`)."""
    step()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    sync()
    return n * items / (time.perf_counter() - start)


def classifier_rows(net: torch.nn.Module) -> list[tuple[str, str]]:
    if not torch.cuda.is_available():
        return [("classifier crops/s, batch 1/8/32/64, fp32 and AMP", "skipped: no CUDA device")]
    rows = []
    for amp in (False, True):
        rates = []
        for bs in (1, 8, 32, 64):
            x = torch.randn(bs, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)

            @torch.inference_mode()
            def step():
                with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                    net(x)

            rates.append(rate(step, bs))
        rows.append((f"classifier crops/s, batch 1/8/32/64, {'AMP fp16' if amp else 'fp32'}",
                     " / ".join(f"{r:.0f}" for r in rates)))
    return rows


def pipeline_rows(clips: list[Path], bundle: Path, frames: int, workers: int) -> list[tuple[str, str]]:
    """Each stage alone on the clips' sampled frames, the front end in `workers` processes, then the
    Scorer end to end with as many; the clips are repeated so that every worker has uploads to read."""
    sampling = SamplingConfig(frames=frames)
    uploads = list(itertools.islice(itertools.cycle(clips), max(len(clips), 3 * workers)))
    start = time.perf_counter()
    decoded = [f for c in clips for f in iter_frames(c, sampling)]
    decode_rate = len(decoded) / (time.perf_counter() - start)
    rows = [("decoding alone, frames/s (one thread)", f"{decode_rate:.1f}")]
    cuda = torch.cuda.is_available()
    detector = FaceDetector(FaceConfig(batch_size=32 if cuda else 1))
    images = [f.image for f in decoded]
    bs = detector.batch_size
    start = time.perf_counter()
    found = [faces for i in range(0, len(images), bs) for faces in detector.detect(images[i : i + bs])]
    detect_rate = len(images) / (time.perf_counter() - start)
    rows.append((f"face detection alone, frames/s (batch {bs}, {detector.device.type})", f"{detect_rate:.1f}"))
    scorer = Scorer(bundle, None, device="auto", sampling=sampling, provenance=ProvenancePolicy(read=C2PA))
    fronts = {}  # the workers' face detector on each device there is; the Scorer then takes the faster
    for where in ("cuda", "cpu") if cuda else ("cpu",):
        settings = scorer.settings.model_copy(update={"faces": scorer.settings.faces.model_copy(update={"device": where})})
        list(scan_many(clips[:1], settings, workers))  # warm-up: worker processes, their detectors
        start = time.perf_counter()
        n = sum(len(s.frames) for s in scan_many(uploads, settings, workers))
        fronts[where] = (n / (time.perf_counter() - start), settings)
        rows.append((f"front end (decoding + detection on {where}), frames/s ({workers} worker processes)",
                     f"{fronts[where][0]:.1f}"))
    front_rate, scorer.settings = max(fronts.values(), key=lambda f: f[0])
    crops = [face.crop for faces in found for face in faces]
    net, meta = scorer.visual
    x = torch.from_numpy(np.stack(crops[:64])).to(next(net.parameters()).device)
    x = x.permute(0, 3, 1, 2).float().div(255).contiguous(memory_format=torch.channels_last)
    crop_rate = rate(torch.inference_mode()(lambda: net(x)), len(x))
    classify_rate = crop_rate * len(images) / max(1, len(crops))  # frames/s at the clips' faces per frame
    rows.append((f"classifier alone, frames/s (batch {len(x)}, {len(crops) / max(1, len(images)):.2f} faces/frame)",
                 f"{classify_rate:.1f}"))
    list(scorer.score_many(clips[:1], workers=workers))  # warm-up
    start = time.perf_counter()
    verdicts = list(scorer.score_many(uploads, workers=workers))
    took = time.perf_counter() - start
    n = sum(v.visual.frames_scored for v in verdicts if getattr(v, "visual", None))
    bound = min(front_rate, classify_rate)
    rows.append((f"Scorer end to end, frames/s ({len(uploads)} clips x {frames} frames, {workers} workers, "
                 f"detection on {scorer.settings.faces.device})",
                 f"{n / took:.1f}"))
    rows.append(("Scorer / slowest stage alone (front end or classifier)", f"{n / took / bound:.0%} of {bound:.1f}"))
    return rows


def load_rows(files: list[Path], workers: int, rounds: int, uploads: int, timeout_s: float,
              logs: Path) -> list[tuple[str, str]]:
    """bench/load.py at 32 clients, batched (32) against unbatched (1), its lines into the table."""
    cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--clients", "32", "--batches", "32", "1",
           "--rounds", str(rounds), "--uploads", str(uploads), "--workers", str(workers), "--logs", str(logs),
           "--files", *map(str, files)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    lines = out.stdout.strip().splitlines()
    print("\n".join(lines), flush=True)
    if out.returncode:
        raise RuntimeError(f"bench/load.py: {(out.stderr.strip().splitlines() or ['?'])[-1]} (logs in {logs})")
    rows = [(f"server {m.group(1).strip()}", m.group(2)) for line in lines
            if (m := re.match(r"(max_batch_size\s+\d+): (.*)", line))]
    rows += [("server batched / unbatched", line.split(": ", 1)[1]) for line in lines if "/ unbatched" in line]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/gpu_check.md")
    ap.add_argument("--clips", nargs="*", type=Path, help="video files (default: ../shared/data/video)")
    ap.add_argument("--photos", nargs="*", type=Path, help="photos for the load run (default: ../shared/data/faces)")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--workers", type=int, default=min(14, max(2, (os.cpu_count() or 4) - 2)))
    ap.add_argument("--load-rounds", type=int, default=1)
    ap.add_argument("--load-uploads", type=int, default=48)
    ap.add_argument("--load-timeout", type=float, default=240, help="seconds for the whole load run")
    ap.add_argument("--no-load", action="store_true", help="leave out the server load run")
    args = ap.parse_args()
    clips = args.clips or sorted((DATA / "video").rglob("*.mp4"))
    photos = args.photos if args.photos is not None else sorted(
        p for p in (DATA / "faces").rglob("*") if p.suffix.lower() in PHOTOS)
    if not clips:
        sys.exit(f"no clips: name some, or put ../shared/data beside the checkout ({DATA / 'video'})")
    torch.manual_seed(0)
    bundle = make_bundle(Path(tempfile.mkdtemp()) / "visual")
    net = Scorer(bundle, None, device="auto").visual[0]
    rows = [("device", device_name()), *version_rows()]
    if not C2PA:
        rows.append(("C2PA manifests", "not read (c2pa-python not installed)"))
    logs = Path(args.out).parent / "load"
    failed = 0
    for name, section in (
            ("classifier", lambda: classifier_rows(net)),
            ("pipeline", lambda: pipeline_rows(clips, bundle, args.frames, args.workers)),
            ("server load", lambda: [] if args.no_load else load_rows(
                clips + photos, args.workers, args.load_rounds, args.load_uploads, args.load_timeout, logs))):
        try:
            new = section()
        except Exception as e:  # noqa: BLE001 - one failed section must not hide the others' figures
            new, failed = [(f"{name}: FAILED", f"{type(e).__name__}: {e}"[:300].replace("|", "/"))], failed + 1
        print("\n".join(f"{k}: {v}" for k, v in new), flush=True)
        rows += new
    table = "| measure | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table, flush=True)
    if failed:
        sys.exit(f"{failed} section(s) failed")


if __name__ == "__main__":
    main()
