"""Face front end frames/s on real clips, one CPU core, against the DFDC winner's front end.

    .venv/bin/python bench/faces.py [PATH ...] [--frames 32] [--set faces.KEY=VALUE ...]

PATHs are clips or folders of them (default: ../shared/data/video). One process pinned to one
core runs every path on the same sampled frames, taking turns clip by clip:
- ours: `FaceDetector.scan` over each clip's frames from `iter_frames` (seek-aware decoding;
  detect, then track), as the scorer and the server run it;
- ours, full cascade: the same with `track_every: 1` (our MTCNN cascade on every frame);
- DFDC winner: OpenCV grabs every frame up to the last sample, facenet-pytorch's MTCNN on
  half-size frames one by one, their thresholds 0.85/0.95/0.95.
Then, on the frames where the DFDC winner finds a face: how many of them ours finds a face in, and
the distance between each of its box centres and the nearest of ours (full-resolution pixels).
Our decoding alone (`iter_frames`) is timed too. The last line is
`ours_fps=... dfdc_winner_fps=... ratio=... face_frames_ours=... face_frames_theirs=...`.
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
import yaml
from facenet_pytorch import MTCNN

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.config import FaceConfig, SamplingConfig  # noqa: E402
from detector.frontend.faces import FaceDetector  # noqa: E402
from detector.frontend.media import iter_frames  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
VIDEO = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


def ours(clip: Path, det: FaceDetector, sampling: SamplingConfig) -> list[tuple[float, np.ndarray]]:
    """Per sampled frame: (time, boxes (k, 4))."""
    frames = det.scan(iter_frames(clip, sampling), crops=True)
    return [(f.t, np.array([x.box for x in f.faces], np.float64).reshape(-1, 4)) for f in frames]


def dfdc_winner(clip: Path, times: list[float], mtcnn: MTCNN) -> list[np.ndarray]:
    """Boxes in the frames at `times`: OpenCV grabs every frame, MTCNN on half-size frames."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    wanted = [int(round(t * fps)) for t in times]
    found = {}
    for i in range(max(wanted) + 1):
        ok = cap.grab()
        if not ok:
            break
        if i not in wanted:
            continue
        ok, frame = cap.retrieve()
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
        boxes, _ = mtcnn.detect(rgb)
        found[i] = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, np.float64) * 2
    cap.release()
    return [found.get(i, np.zeros((0, 4))) for i in wanted]


def compare(mine: list[np.ndarray], theirs: list[np.ndarray]) -> tuple[int, list[float], int]:
    """Frames where both find a face; for each face of theirs in them, the centre offset to the nearest
    of ours where that is within half its side (the same face), and how many of theirs had none."""
    both, offsets, unmatched = 0, [], 0
    for a, b in zip(mine, theirs):
        if len(a) and len(b):
            both += 1
            d = np.linalg.norm((b[:, None, :2] + b[:, None, 2:] - a[None, :, :2] - a[None, :, 2:]) / 2, axis=2).min(1)
            same = d <= (b[:, 2:] - b[:, :2]).max(1) / 2
            offsets += d[same].tolist()
            unmatched += int((~same).sum())
    return both, offsets, unmatched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, default=[SHARED])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--set", action="append", default=[], metavar="faces.KEY=VALUE",
                    help="a FaceConfig override for ours, e.g. --set faces.track_every=16")
    args = ap.parse_args()
    clips = sorted(q for p in args.paths for q in ([p] if p.is_file() else p.rglob("*")) if q.suffix.lower() in VIDEO)
    if not clips:
        sys.exit(f"no clips under {' '.join(map(str, args.paths))}")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for every path
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sampling = SamplingConfig(frames=args.frames)
    overrides = {k.removeprefix("faces."): yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = FaceConfig(device="cpu", batch_size=1, **overrides)

    paths = {"ours": FaceDetector(cfg), "full": FaceDetector(cfg.model_copy(update={"track_every": 1}))}
    mtcnn = MTCNN(keep_all=True, device="cpu", thresholds=[0.85, 0.95, 0.95])  # their settings
    took = {"ours": 0.0, "full": 0.0, "theirs": 0.0, "decoding": 0.0}
    tracked, full, theirs = [], [], []
    for clip in clips:  # the paths take turns clip by clip: a shared machine's load falls on all of them
        for name, out in (("ours", tracked), ("full", full)):
            start = time.perf_counter()
            out.append(ours(clip, paths[name], sampling))
            took[name] += time.perf_counter() - start
        start = time.perf_counter()
        sum(1 for _ in iter_frames(clip, sampling))  # our decoding alone: the part of ours no detector speeds up
        took["decoding"] += time.perf_counter() - start
        start = time.perf_counter()
        theirs.append(dfdc_winner(clip, [t for t, _ in tracked[-1]], mtcnn))
        took["theirs"] += time.perf_counter() - start
    n = sum(len(fr) for fr in tracked)
    boxes = {name: [b for fr in found for _, b in fr] for name, found in (("ours", tracked), ("full", full))}
    boxes["theirs"] = [b for fr in theirs for b in fr]
    face_frames = {name: sum(len(b) > 0 for b in found) for name, found in boxes.items()}
    print(f"{len(clips)} clips, {n} sampled frames, one core")
    for name, label in (("ours", "ours (detect, then track)"), ("full", "ours, full cascade every frame"),
                        ("theirs", "DFDC winner (OpenCV, MTCNN 1/2)")):
        both, off, unmatched = compare(boxes[name], boxes["theirs"])
        print(f"{label:32s} {n / took[name]:6.2f} frames/s ({took[name]:5.1f} s); faces in {face_frames[name]} frames, "
              f"{both} of the DFDC winner's {face_frames['theirs']}; its faces there: centre offset mean "
              f"{np.mean(off):.1f} px, max {np.max(off):.1f} px, {unmatched} not found", flush=True)
    print(f"ours / full cascade: {took['full'] / took['ours']:.2f}x; our decoding alone: {took['decoding']:.1f} s "
          f"of ours' {took['ours']:.1f} s")
    print(f"ours_fps={n / took['ours']:.2f} dfdc_winner_fps={n / took['theirs']:.2f} "
          f"ratio={took['theirs'] / took['ours']:.2f} face_frames_ours={face_frames['ours']} "
          f"face_frames_theirs={face_frames['theirs']}")


if __name__ == "__main__":
    main()
