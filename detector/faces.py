"""Face front end: batched MTCNN on downscaled frames, square crops, and tracks across frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from detector.config import FaceConfig
from detector.media import Frame
from detector.mtcnn import Cascade


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Face:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in full-resolution pixels
    prob: float
    landmarks: np.ndarray  # (5, 2) eyes, nose, mouth corners, full-resolution pixels
    crop_box: np.ndarray  # (4,) int square region the crop was cut from (may leave the frame)
    crop: np.ndarray | None = None  # (S, S, 3) uint8 RGB at the model's input size
    track: int = -1

    def to_dict(self) -> dict:
        return {
            "track": self.track,
            "box": [round(float(v), 1) for v in self.box],
            "prob": round(self.prob, 5),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }


@dataclass
class FrameFaces:
    index: int
    t: float
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)


@dataclass
class Track:
    id: int
    frames: list[int]  # indices into the scan's frames
    mean_prob: float

    def to_dict(self, frames: Sequence[FrameFaces]) -> dict:
        return {
            "track": self.id,
            "frames": len(self.frames),
            "first_t": round(frames[self.frames[0]].t, 3),
            "last_t": round(frames[self.frames[-1]].t, 3),
            "mean_prob": round(self.mean_prob, 5),
        }


class FaceDetector:
    """MTCNN (facenet-pytorch's bundled weights) over batches of frames of any sizes."""

    def __init__(self, cfg: FaceConfig = FaceConfig()):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self._cascade = Cascade(cfg.thresholds).to(self.device).eval()
        self.batch_size = cfg.batch_size or (32 if self.device.type == "cuda" else 1)

    def _detect_scale(self, h: int, w: int) -> float:
        s = self.cfg.detect_scale
        if self.cfg.detect_max_side:
            s = min(s, self.cfg.detect_max_side / max(h, w))
        return s

    def detect(self, images: Sequence[np.ndarray], crops: bool = True) -> list[list[Face]]:
        """Faces in each (H, W, 3) uint8 RGB image, in one MTCNN pass over all of them."""
        if not images:
            return []
        scales, small = [], []
        for img in images:
            s = self._detect_scale(*img.shape[:2])
            scales.append(s)
            h, w = img.shape[:2]
            size = (max(1, round(w * s)), max(1, round(h * s)))
            small.append(img if s == 1 else cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        # pad to one shape at the bottom/right: box coordinates stay those of each image
        H = max(x.shape[0] for x in small)
        W = max(x.shape[1] for x in small)
        batch = np.zeros((len(small), H, W, 3), np.uint8)  # (B, H, W, 3)
        for i, x in enumerate(small):
            batch[i, : x.shape[0], : x.shape[1]] = x
        # one pyramid for the batch: deep enough for the most downscaled image's smallest face
        found = self._cascade(batch, self.cfg.min_face_px * min(scales))
        out = []
        for img, s, (b, p) in zip(images, scales, found):
            faces = []
            for row, lm in zip(b, p):
                box = row[:4] / s
                crop_box = square_box(box, self.cfg.scale)
                faces.append(Face(box=box, prob=float(row[4]), landmarks=lm / s, crop_box=crop_box,
                                  crop=cut_crop(img, crop_box, self.cfg.crop_size) if crops else None))
            out.append(faces)
        return out

    def scan(self, frames: Iterable[Frame], crops: bool = True) -> list[FrameFaces]:
        """Detect faces in a stream of frames, `batch_size` frames per detector call."""
        result: list[FrameFaces] = []
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                result += self._frame_faces(batch, crops)
                batch = []
        result += self._frame_faces(batch, crops)
        return result

    def _frame_faces(self, frames: list[Frame], crops: bool) -> list[FrameFaces]:
        found = self.detect([f.image for f in frames], crops)
        return [FrameFaces(f.index, f.t, f.image.shape[1], f.image.shape[0], faces)
                for f, faces in zip(frames, found)]


def square_box(box: np.ndarray, scale: float) -> np.ndarray:
    """The square of side `scale` x the box's longer side, on the box's centre (integer pixels)."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    return np.array([x0, y0, x0 + s, y0 + s], np.int64)


def cut_crop(image: np.ndarray, crop_box: np.ndarray, size: int) -> np.ndarray:
    """Cut `crop_box` from the image (black where it leaves the frame), resized to size x size."""
    H, W = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in crop_box)
    inside = image[max(0, y1) : min(H, y2), max(0, x1) : min(W, x2)]
    if (x1, y1, x2, y2) != (max(0, x1), max(0, y1), min(W, x2), min(H, y2)):
        padded = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        padded[max(0, -y1) : max(0, -y1) + inside.shape[0], max(0, -x1) : max(0, -x1) + inside.shape[1]] = inside
        inside = padded
    interp = cv2.INTER_AREA if inside.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(inside, (size, size), interpolation=interp)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x1y1x2y2 boxes -> (N, M)."""
    a, b = a[:, None, :], b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def link_tracks(frames: list[FrameFaces], cfg: FaceConfig = FaceConfig()) -> list[Track]:
    """Give every face a track id: one id per person across frames (sets `Face.track`)."""
    tracks: list[Track] = []
    last: dict[int, tuple[int, np.ndarray]] = {}  # open track -> (frame position, last box)
    for fi, frame in enumerate(frames):
        for tid in [t for t, (pos, _) in last.items() if fi - pos > cfg.track_max_gap + 1]:
            del last[tid]  # gone for too long: a new face there is a new track
        faces = frame.faces
        open_ids = list(last)
        matched: set[int] = set()
        if faces and open_ids:
            prev = np.stack([last[t][1] for t in open_ids])
            cur = np.stack([f.box for f in faces])
            ov = iou(prev, cur)
            side = np.maximum(prev[:, 2] - prev[:, 0], prev[:, 3] - prev[:, 1])[:, None]
            dist = np.hypot(*(((prev[:, None, :2] + prev[:, None, 2:]) - (cur[None, :, :2] + cur[None, :, 2:])) / 2)
                            .transpose(2, 0, 1)) / np.maximum(side, 1e-9)
            ok = (ov >= cfg.track_iou) | (dist <= cfg.track_centre)
            cost = np.where(ok, dist - ov, 1e6)
            for r, c in zip(*linear_sum_assignment(cost)):
                if ok[r, c]:
                    faces[c].track = open_ids[r]
                    matched.add(c)
        for c, face in enumerate(faces):
            if c not in matched:
                face.track = len(tracks)
                tracks.append(Track(face.track, [], 0.0))
            track = tracks[face.track]
            track.frames.append(fi)
            track.mean_prob += (face.prob - track.mean_prob) / len(track.frames)
            last[face.track] = (fi, face.box)
    return tracks
