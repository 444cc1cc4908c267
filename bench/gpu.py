"""The GPU table: classifier crops/s by batch and precision, front-end and Scorer frames/s, and server
batching against unbatched, on whatever device this machine has (CUDA parts skipped without one).

    python bench/gpu.py [--out out/gpu_check.md] [--clips PATH...] [--load-rounds 1] [--no-load]

Run by `bench/gpu_check.sh`, which runs the CUDA tests first. The classifier is an untrained
efficientnet_b0 at 224 px (speed does not depend on weights); clips default to ../shared/data/video.
"""

from __future__ import annotations

import argparse
import os
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
from detector.scoring.scorer import Scorer  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "video"


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, {os.cpu_count()} CPU cores)"
    return f"CPU only ({os.cpu_count()} cores, torch {torch.__version__})"


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


def pipeline_rows(clips: list[Path], bundle: Path, frames: int) -> list[tuple[str, str]]:
    """Each stage alone on the clips' sampled frames, then the Scorer end to end."""
    sampling = SamplingConfig(frames=frames)
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
    scorer = Scorer(bundle, None, device="auto", sampling=sampling)
    crops = [face.crop for faces in found for face in faces]
    net, meta = scorer.visual
    x = torch.from_numpy(np.stack(crops[:64])).to(next(net.parameters()).device)
    x = x.permute(0, 3, 1, 2).float().div(255).contiguous(memory_format=torch.channels_last)
    crop_rate = rate(torch.inference_mode()(lambda: net(x)), len(x))
    classify_rate = crop_rate * len(images) / max(1, len(crops))  # frames/s at the clips' faces per frame
    rows.append((f"classifier alone, frames/s (batch {len(x)}, {len(crops) / max(1, len(images)):.2f} faces/frame)",
                 f"{classify_rate:.1f}"))
    list(scorer.score_many(clips[:1]))  # warm-up
    start = time.perf_counter()
    verdicts = list(scorer.score_many(clips))
    took = time.perf_counter() - start
    n = sum(v.visual.frames_scored for v in verdicts if getattr(v, "visual", None))
    bound = min(decode_rate, detect_rate, classify_rate)
    rows.append((f"Scorer end to end, frames/s ({len(clips)} clips x {frames} frames)", f"{n / took:.1f}"))
    rows.append(("Scorer / slowest stage alone (bound)", f"{n / took / bound:.0%} of {bound:.1f}"))
    return rows


def load_rows(rounds: int, uploads: int, timeout_s: float) -> list[tuple[str, str]]:
    """bench/load.py at 32 clients, batched (32) against unbatched (1), its lines into the table."""
    cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--clients", "32", "--batches", "32", "1",
           "--rounds", str(rounds), "--uploads", str(uploads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    lines = out.stdout.strip().splitlines()
    print("\n".join(lines), flush=True)
    if out.returncode:
        return [("server load (bench/load.py)", f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")]
    rows = [(f"server {m.group(1).strip()}", m.group(2)) for line in lines
            if (m := re.match(r"(max_batch_size\s+\d+): (.*)", line))]
    rows += [("server batched / unbatched", line.split(": ", 1)[1]) for line in lines if "/ unbatched" in line]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/gpu_check.md")
    ap.add_argument("--clips", nargs="*", type=Path, help="video files (default: ../shared/data/video)")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--load-rounds", type=int, default=1)
    ap.add_argument("--load-uploads", type=int, default=48)
    ap.add_argument("--load-timeout", type=float, default=240, help="seconds for the whole load run")
    ap.add_argument("--no-load", action="store_true", help="leave out the server load run")
    args = ap.parse_args()
    clips = args.clips or sorted(VIDEO.rglob("*.mp4"))
    if not clips:
        sys.exit(f"no clips: name some, or put ../shared/data beside the checkout ({VIDEO})")
    torch.manual_seed(0)
    bundle = make_bundle(Path(tempfile.mkdtemp()) / "visual")
    net = Scorer(bundle, None, device="auto").visual[0]
    rows = [("device", device_name())]
    for section in (lambda: classifier_rows(net), lambda: pipeline_rows(clips, bundle, args.frames),
                    lambda: [] if args.no_load else load_rows(args.load_rounds, args.load_uploads, args.load_timeout)):
        try:
            new = section()
        except Exception as e:  # noqa: BLE001 - one failed section must not hide the others' figures
            new = [("section failed", f"{type(e).__name__}: {e}"[:200])]
        print("\n".join(f"{k}: {v}" for k, v in new), flush=True)
        rows += new
    table = "| measure | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table, flush=True)


if __name__ == "__main__":
    main()
