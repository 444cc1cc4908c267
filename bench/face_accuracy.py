"""Face front end accuracy on ../shared/data/faces: face counts, and box recall/precision on dlib's photos.

    .venv/bin/python bench/face_accuracy.py

Counts: a photo is right when the number of faces found equals `labels.csv`'s count. Boxes: dlib's
`training.xml`/`testing.xml` faces at least 40 px high are the truth; a detection matches a truth
box at IoU >= 0.5 (one to one); detections that overlap only smaller truth faces are not counted
against precision.
"""

from __future__ import annotations

import csv
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.frontend.faces import FaceDetector, iou  # noqa: E402
from detector.frontend.media import read_image  # noqa: E402

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
MIN_HEIGHT = 40


def dlib_boxes(folder: Path) -> dict[str, np.ndarray]:
    """Truth boxes (N, 4) x1y1x2y2 per photo from dlib's imglab XML files."""
    boxes: dict[str, np.ndarray] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            rows = [[int(b.get("left")), int(b.get("top")),
                     int(b.get("left")) + int(b.get("width")), int(b.get("top")) + int(b.get("height"))]
                    for b in image.iter("box") if b.get("ignore") != "1"]
            boxes[image.get("file")] = np.array(rows, np.float32).reshape(-1, 4)
    return boxes


def evaluate(detector: FaceDetector, root: Path = FACES) -> dict:
    labels = {row["path"]: int(row["faces"]) for row in csv.DictReader((root / "labels.csv").open())}
    found = {p: [f.box for f in detector.detect([read_image(root / p)], crops=False)[0]] for p in labels}
    counts_right = sum(len(found[p]) == n for p, n in labels.items())
    tp = fn = fp = 0
    for name, truth in dlib_boxes(root / "dlib_faces").items():
        det = np.array(found.get(f"dlib_faces/{name}", []), np.float32).reshape(-1, 4)
        big = (truth[:, 3] - truth[:, 1]) >= MIN_HEIGHT
        ov = iou(truth, det) if len(truth) and len(det) else np.zeros((len(truth), len(det)))
        rows, cols = linear_sum_assignment(-ov) if ov.size else ([], [])
        hit = {(r, c) for r, c in zip(rows, cols) if ov[r, c] >= 0.5}
        tp += sum(1 for r, _ in hit if big[r])
        fn += int(big.sum()) - sum(1 for r, _ in hit if big[r])
        matched_small = {c for r, c in hit if not big[r]}
        fp += sum(1 for c in range(len(det)) if c not in {c for _, c in hit} and c not in matched_small)
    return {
        "photos": len(labels),
        "count_accuracy": counts_right / len(labels),
        "dlib_faces_40px": tp + fn,
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
    }


if __name__ == "__main__":
    if not FACES.is_dir():
        sys.exit(f"{FACES} is absent: this benchmark needs ../shared/data")
    for key, value in evaluate(FaceDetector()).items():
        print(f"{key:16s} {value:.3f}" if isinstance(value, float) else f"{key:16s} {value}")
