"""End-to-end scoring speed and memory, against a naive path and the slowest stage's bound.

    .venv/bin/python bench/score.py [--clips 11] [--long-minutes 10]

On the real clips of ../shared/data/video, 32 frames each, the same machine and the same run:
- the Scorer (`score_many`: worker processes decode and find faces, crops batched into the classifier);
- naive: OpenCV seeks each sampled frame, facenet-pytorch MTCNN at full resolution, one crop at a
  time through the classifier;
- each stage alone, run as the Scorer runs it: decoding (FFmpeg's own threads) and face detection
  (detect, then track, one torch thread) as in each of the two worker processes, the classifier on
  every core at its best batch size; wall and CPU time (`process_time`) of each. Two bounds: the
  slowest stage with the machine to itself (the workers' stages in two processes, at most the
  cores' CPU time), and the cores shared: the stages' CPU time per frame added up (what the cores
  can do at most when every stage needs them). Each stage's share of that CPU time is the profile.
Then peak memory (max RSS of a child process) scoring a generated 1080p video of --long-minutes.
The classifier is an untrained efficientnet_b0 at 224 px: speed does not depend on its weights.
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.bundle import BundleMeta, save_bundle  # noqa: E402
from detector.config import SamplingConfig  # noqa: E402
from detector.frontend.faces import FaceDetector  # noqa: E402
from detector.frontend.media import iter_frames  # noqa: E402
from detector.models import create_model  # noqa: E402
from detector.samples import astronaut  # noqa: E402
from detector.scoring.scorer import Scorer, crop_logits  # noqa: E402

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"


def make_bundle(folder: Path) -> Path:
    net = create_model("timm", backbone="efficientnet_b0")
    return save_bundle(folder, net, BundleMeta(family="timm", model={"backbone": "efficientnet_b0"}, input_size=224,
                                               mean=net.mean.flatten().tolist(), std=net.std.flatten().tolist()))


def naive(clips: list[Path], frames: int, net: torch.nn.Module) -> int:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")
    faces = 0
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, total - 1, frames).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes, _ = mtcnn.detect(rgb)
            for box in [] if boxes is None else boxes:
                x1, y1, x2, y2 = (max(0, int(v)) for v in box)
                crop = cv2.resize(rgb[y1:y2, x1:x2], (224, 224))
                with torch.inference_mode():
                    net(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255)
                faces += 1
        cap.release()
    return faces


def timed(fn):
    """fn's result, wall seconds and CPU seconds (every thread of this process, the decoder's included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def peak_memory(minutes: float, bundle: Path) -> tuple[float, float]:
    """Max RSS (GiB) of a child that scores a generated 1080p video, and the video's size."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        import av

        frame = cv2.resize(astronaut(), (1920, 1080))
        with av.open(str(path), "w") as out:
            s = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "250"})
            s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
            for i in range(int(minutes * 60 * 25)):
                f = av.VideoFrame.from_ndarray(np.roll(frame, i % 200, axis=1), format="rgb24")
                out.mux(s.encode(f))
            out.mux(s.encode())
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report this
        # (large) process's peak as its own
        code = (f"import re, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
                "from detector.scoring.scorer import Scorer\n"
                f"v = list(Scorer({str(bundle)!r}, None, device='cpu').score_many([{str(path)!r}]))[0]\n"
                "print(v.visual.frames_scored, re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        return int(out[1]) / 2**20, path.stat().st_size / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=11)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--long-minutes", type=float, default=10)
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory measurement")
    args = ap.parse_args()
    if args.memory_only:
        tmp = Path(tempfile.mkdtemp())
        rss, size = peak_memory(args.long_minutes, make_bundle(tmp / "visual"))
        print(f"peak memory scoring a {args.long_minutes:g}-minute 1080p video ({size:.0f} MiB): {rss:.2f} GiB")
        return
    clips = sorted(VIDEO.rglob("*.mp4"))[: args.clips]
    if not clips:
        sys.exit(f"no clips under {VIDEO}: this benchmark needs ../shared/data")
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    bundle = make_bundle(tmp / "visual")
    n = len(clips) * args.frames
    scorer = Scorer(bundle, None, device="cpu", sampling=SamplingConfig(frames=args.frames))
    list(scorer.score_many(clips[:1]))  # warm-up

    start = time.perf_counter()
    verdicts = list(scorer.score_many(clips))
    ours = time.perf_counter() - start
    print(f"scorer: {len(verdicts)} uploads, {n} frames in {ours:.1f} s = {len(verdicts) / ours:.2f} uploads/s, "
          f"{n / ours:.1f} frames/s", flush=True)

    by_clip, wall, cpu = timed(lambda: [list(iter_frames(c, SamplingConfig(frames=args.frames))) for c in clips])
    frames = [f for fs in by_clip for f in fs]
    stages = {"decoding": (wall, cpu)}
    detector = FaceDetector()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: one clip's frames per call (detect, then track)
    found, *stages["face detection"] = timed(lambda: [ff.faces for fs in by_clip for ff in detector.scan(fs)])
    torch.set_num_threads(threads)
    crops = [face.crop for faces in found for face in faces]
    net = scorer.visual[0]
    batches = {bs: timed(lambda: crop_logits(net, scorer.visual[1], crops, batch_size=bs))[1:] for bs in (1, 8, 32, 64)}
    best = min(batches, key=lambda bs: batches[bs][0])
    stages["classifier"] = batches[best]
    workers = inspect.signature(Scorer.score_many).parameters["workers"].default  # the Scorer's default
    cores = os.cpu_count() or 1
    workers = min(workers, cores)
    per_frame = {k: (w / len(frames), c / len(frames)) for k, (w, c) in stages.items()}  # wall, CPU seconds
    # alone: the workers' stages in `workers` processes (at most the cores' CPU time), the classifier as measured
    alone = {k: 1 / w if k == "classifier" else min(workers / w, cores / c) for k, (w, c) in per_frame.items()}
    bound = min(alone.values())
    cpu_total = sum(c for _, c in per_frame.values())
    shared = cores / cpu_total  # every stage's CPU time per frame added up, spread over the cores
    print("stages alone: " + "; ".join(f"{k} {1 / w:.1f} frames/s, {c * 1e3:.1f} CPU ms per frame"
                                        for k, (w, c) in per_frame.items())
          + f" (detection on 1 thread, the classifier on {threads} at batch {best}: {len(crops) / stages['classifier'][0]:.1f} "
          f"crops/s, {len(crops) / len(frames):.2f} faces per frame)", flush=True)
    print(f"slowest-stage bound ({min(alone, key=alone.get)}; {workers} workers): {bound:.1f} frames/s; the cores "
          f"shared: {shared:.1f} frames/s; CPU time by stage: "
          + ", ".join(f"{k} {c / cpu_total:.0%}" for k, (_, c) in per_frame.items()), flush=True)

    start = time.perf_counter()
    naive(clips, args.frames, net)
    naive_rate = n / (time.perf_counter() - start)
    print(f"naive: {naive_rate:.2f} frames/s", flush=True)
    print(f"scorer / naive: {n / ours / naive_rate:.2f}x; scorer / slowest-stage bound: {n / ours / bound:.0%}; "
          f"scorer / the cores shared: {n / ours / shared:.0%}", flush=True)

    if args.long_minutes > 0:
        rss, size = peak_memory(args.long_minutes, bundle)
        print(f"peak memory scoring a {args.long_minutes:g}-minute 1080p video ({size:.0f} MiB): {rss:.2f} GiB")


if __name__ == "__main__":
    main()
