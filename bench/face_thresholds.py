"""MTCNN stage thresholds at scoring time: the training-time ones against the DFDC winner's looser
inference ones, on ../shared/data.

    .venv/bin/python bench/face_thresholds.py [--images 400] [--frames 16] [--decisions]

A face the front end misses makes its upload `no_signal` (a fake passes unscored); a false face is
a crop the classifier scores for nothing. For each setting:
- photos (`faces/`): the face-count accuracy, and box recall / precision on dlib's boxes
  (bench/face_accuracy.py);
- face images (`images/`, every source, a fixed sample): the share with no face found;
- videos (`video/`, `talking/`): the share of sampled frames with a face, and clips with none.

`--decisions`: what each setting does to the shipped face model's decisions on the same images and
clips, scored as `deepfake-detect score` scores (`Scorer(detect_thresholds=...)`, no voice model):
per label, the uploads left `no_signal` and those the bundle's thresholds send to review or flag,
and how far the uploads scored under both settings moved.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_accuracy import evaluate  # noqa: E402

from detector.config import SCORING_THRESHOLDS, FaceConfig, SamplingConfig  # noqa: E402
from detector.frontend.faces import FaceDetector  # noqa: E402
from detector.frontend.media import iter_frames, read_image  # noqa: E402
from detector.scoring.scorer import Scorer  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = {  # track_keep may not exceed the last threshold
    "training (0.85/0.95/0.95)": dict(thresholds=(0.85, 0.95, 0.95), track_keep=0.9),
    "DFDC winner inference (0.7/0.8/0.8)": dict(thresholds=(0.7, 0.8, 0.8), track_keep=0.8),
}


def missed_images(det: FaceDetector, paths: list[Path]) -> dict[str, tuple[int, int]]:
    """Per source: (images with no face found, images)."""
    out: dict[str, list[int]] = {}
    for p in paths:
        src = p.relative_to(DATA / "images").parts[0]
        found = det.detect([read_image(p)], crops=False)[0]
        out.setdefault(src, [0, 0])[0] += not found
        out[src][1] += 1
    return {k: tuple(v) for k, v in out.items()}


def video_faces(det: FaceDetector, clips: list[Path], frames: int) -> tuple[int, int, int]:
    """(sampled frames with a face, sampled frames, clips with no face at all)."""
    with_face = total = empty = 0
    for clip in clips:
        scanned = det.scan(iter_frames(clip, SamplingConfig(frames=frames)), crops=False)
        n = sum(bool(f.faces) for f in scanned)
        with_face, total, empty = with_face + n, total + len(scanned), empty + (n == 0)
    return with_face, total, empty


def decisions(paths: list[Path], labels: list[str], thresholds: tuple[float, float, float] | None) -> dict[Path, tuple]:
    """Per upload: (label, decision, face score or None), scored by the shipped face model."""
    with Scorer(visual="starter", audio=None, device="cpu", detect_thresholds=thresholds) as scorer:
        out = {}
        for v in scorer.score_many(paths, workers=1):
            face = v.visual.score if getattr(v, "visual", None) else None  # an ErrorRecord has no visual, no decision
            out[paths[v.index]] = (labels[v.index], getattr(v, "decision", "error"), face)
    return out


def compare(runs: dict[str, dict[Path, tuple]]) -> None:
    """Decisions per label under each setting, each upload's change of decision, and how far scores moved."""
    for name, run in runs.items():
        for label in ("real", "fake"):
            got = [d for lab, d, _ in run.values() if lab == label]
            counts = {k: got.count(k) for k in ("no_signal", "clear", "review", "likely_fake", "error")}
            print(f"{name}, {label} uploads ({len(got)}): " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    a, b = runs.values()
    for label in ("real", "fake"):
        moves = Counter(f"{a[p][1]} -> {b[p][1]}" for p in a if a[p][0] == label and a[p][1] != b[p][1])
        print(f"{label} uploads whose decision changed: " + (", ".join(f"{k} {n}" for k, n in sorted(moves.items())) or "none"))
    both = [p for p in a if a[p][2] is not None and b[p][2] is not None]
    moved = np.array([b[p][2] - a[p][2] for p in both] or [0.0])
    print(f"scored under both: {len(both)} uploads; face score change mean {moved.mean():+.4f}, "
          f"largest {np.abs(moved).max():.4f}, changed by more than 0.01: {(np.abs(moved) > 0.01).sum()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400, help="face images sampled from images/ (fixed seed)")
    ap.add_argument("--frames", type=int, default=16, help="frames sampled per clip")
    ap.add_argument("--decisions", action="store_true", help="the shipped face model's decisions under each setting")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs ../shared/data")
    rows = list(csv.DictReader(open(DATA / "images" / "labels.csv", newline="")))
    pick = np.random.default_rng(0).choice(len(rows), min(args.images, len(rows)), replace=False)
    images = [DATA / "images" / rows[i]["path"] for i in sorted(pick)]
    clips = sorted(p for d in ("video", "talking") for p in (DATA / d).rglob("*") if p.suffix in {".mp4", ".mov", ".webm"})
    if args.decisions:
        label = {DATA / d / r["path"]: r["label"] for d in ("images", "video", "talking")
                 for r in csv.DictReader(open(DATA / d / "labels.csv", newline=""))}
        paths = images + clips
        compare({name: decisions(paths, [label[p] for p in paths], thresholds)
                 for name, thresholds in (("bundle's (0.85/0.95/0.95)", None), ("scoring (0.7/0.8/0.8)", SCORING_THRESHOLDS))})
        return
    for name, overrides in SETTINGS.items():
        det = FaceDetector(FaceConfig(device="cpu", **overrides))
        photos = evaluate(det)
        missed = missed_images(det, images)
        with_face, total, empty = video_faces(det, clips, args.frames)
        print(f"{name}")
        print(f"  photos: {photos['photos']}, face counts right {photos['count_accuracy']:.3f}; dlib boxes >= 40 px: "
              f"{photos['dlib_faces_40px']}, recall {photos['recall']:.3f}, precision {photos['precision']:.3f}")
        print("  face images with no face found: " + ", ".join(f"{k} {m}/{n}" for k, (m, n) in sorted(missed.items()))
              + f"; all {sum(m for m, _ in missed.values())}/{len(images)}")
        print(f"  videos: {len(clips)} clips, frames with a face {with_face}/{total}, clips with none {empty}", flush=True)


if __name__ == "__main__":
    main()
