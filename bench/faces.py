"""Face front end frames/s on real clips, one CPU core, against the DFDC winner's front end.

    .venv/bin/python bench/faces.py [--clips N] [--frames 32]

Runs in one process pinned to one core, so every path gets the same machine at the same time:
- ours: `scan_files` (seek-aware decoding, our MTCNN cascade), at its CPU default of one frame per
  detector call, and with batches of 16 frames;
- DFDC winner: OpenCV grabs every frame up to the last sample, MTCNN on half-size frames one by one;
- naive: OpenCV seeks each sampled frame, MTCNN at full resolution.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.config import FaceConfig, SamplingConfig  # noqa: E402
from detector.faces import FaceDetector, scan_files  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"


def opencv_path(path: Path, n: int, mtcnn: MTCNN, scale: float, seek: bool) -> int:
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, n).astype(int).tolist())
    faces = 0
    for i in range(max(wanted) + 1):
        if seek:
            if i not in wanted:
                continue
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
        else:
            ok = cap.grab()
            if not ok or i not in wanted:
                continue
            ok, frame = cap.retrieve()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if scale != 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes, _ = mtcnn.detect(rgb)
        faces += 0 if boxes is None else len(boxes)
    cap.release()
    return faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=32)
    args = ap.parse_args()
    clips = sorted(SHARED.rglob("*.mp4"))[: args.clips]
    if not clips:
        sys.exit(f"no clips under {SHARED}: this benchmark needs ../shared/data")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for every path
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    n_frames = args.frames * len(clips)
    sampling = SamplingConfig(frames=args.frames)
    results = {}

    def timed(name: str, fn) -> None:
        start = time.perf_counter()
        faces = fn()
        took = time.perf_counter() - start
        results[name] = n_frames / took
        print(f"{name:28s} {n_frames / took:6.2f} frames/s  ({took:5.1f} s, {faces} faces)", flush=True)

    for bs, name in ((1, "ours (CPU default, batch 1)"), (16, "ours, batch 16")):
        det = FaceDetector(FaceConfig(batch_size=bs, device="cpu"))
        timed(name, lambda: sum(sum(len(f.faces) for f in s.frames)
                                for s in scan_files(clips, det, sampling, decoders=1)))
    mtcnn = MTCNN(keep_all=True, device="cpu", thresholds=[0.85, 0.95, 0.95])  # their settings
    timed("DFDC winner (OpenCV, 1/2)", lambda: sum(opencv_path(c, args.frames, mtcnn, 0.5, False) for c in clips))
    timed("naive (seek, full res)", lambda: sum(opencv_path(c, args.frames, mtcnn, 1.0, True) for c in clips))
    ours, base = results["ours (CPU default, batch 1)"], results["DFDC winner (OpenCV, 1/2)"]
    print(f"\n{len(clips)} clips x {args.frames} frames, one core. ours / DFDC winner: {ours / base:.2f}x; "
          f"batch 16 / batch 1: {results['ours, batch 16'] / ours:.2f}x; "
          f"ours / naive: {ours / results['naive (seek, full res)']:.2f}x")


if __name__ == "__main__":
    main()
