"""Face front end: batched MTCNN on downscaled frames, square crops, and tracks across frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from detector.config import FaceConfig
from detector.frontend.media import Frame
from detector.frontend.mtcnn import Cascade


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

    def detect(self, images: Sequence[np.ndarray], crops: bool = True, min_face: float | None = None,
               scale: float | None = None) -> list[list[Face]]:
        """Faces in each (H, W, 3) uint8 RGB image, in one MTCNN pass over all of them.

        `min_face`: smallest face side sought (full-resolution pixels); `scale`: of the copy detected on.
        """
        if not images:
            return []
        scales, small = [], []
        for img in images:
            s = scale or self._detect_scale(*img.shape[:2])
            scales.append(s)
            small.append(scale_image(img, s))
        # pad to one shape at the bottom/right: box coordinates stay those of each image
        H = max(x.shape[0] for x in small)
        W = max(x.shape[1] for x in small)
        batch = np.zeros((len(small), H, W, 3), np.uint8)  # (B, H, W, 3)
        for i, x in enumerate(small):
            batch[i, : x.shape[0], : x.shape[1]] = x
        # one pyramid for the batch: deep enough for the most downscaled image's smallest face
        found = self._cascade(batch, (min_face or self.cfg.min_face_px) * min(scales))
        return [self._faces(img, b, p, s, crops) for img, s, (b, p) in zip(images, scales, found)]

    def _faces(self, image: np.ndarray, boxes: np.ndarray, points: np.ndarray, s: float, crops: bool,
               offset: tuple[int, int] = (0, 0)) -> list[Face]:
        """Faces from the cascade's boxes and landmarks on a copy at scale `s` of the image from `offset`."""
        out = []
        for row, lm in zip(boxes, points):
            box = row[:4] / s + np.tile(offset, 2)
            crop_box = square_box(box, self.cfg.scale)
            out.append(Face(box=box, prob=float(row[4]), landmarks=lm / s + offset, crop_box=crop_box,
                            crop=cut_crop(image, crop_box, self.cfg.crop_size) if crops else None))
        return out

    def scan(self, frames: Iterable[Frame], crops: bool = True) -> list[FrameFaces]:
        """Faces in one upload's frames: detect, then track one frame at a time, or full detection in batches."""
        if self.batch_size > 1 or self.cfg.track_every <= 1:
            result: list[FrameFaces] = []
            batch: list[Frame] = []
            for frame in frames:
                batch.append(frame)
                if len(batch) == self.batch_size:
                    result += self._frame_faces(batch, crops)
                    batch = []
            return result + self._frame_faces(batch, crops)
        result, faces, since, prev = [], [], 0, None
        for f in frames:
            h, w = f.image.shape[:2]
            thumb = f.image[:: max(1, h // 32), :: max(1, w // 32)].astype(np.int16)  # for scene changes
            cut = prev is None or thumb.shape != prev.shape or np.abs(thumb - prev).mean() > self.cfg.scene_change
            if faces and not cut:
                side = min(max(x.box[2] - x.box[0], x.box[3] - x.box[1]) for x in faces)
                s = min(1.0, self.cfg.track_face_px / side)  # the copy the cascade sees, scaled to the faces
                found = self.follow(f.image, faces, s, crops) if since < self.cfg.track_every else []
                since += 1
                if len(found) < len(faces):  # every k-th frame or a track lost: faces down to a fraction of theirs
                    min_face = max(self.cfg.min_face_px, self.cfg.track_min_face * side)
                    found, since = self.detect([f.image], crops, min_face, s)[0], 1
            else:  # the first frame, no face to follow or a scene cut: the full cascade for every face size
                found, since = self.detect([f.image], crops)[0], 1
            faces, prev = found, thumb
            result.append(FrameFaces(f.index, f.t, w, h, faces))
        return result

    def follow(self, image: np.ndarray, faces: list[Face], s: float, crops: bool = True) -> list[Face]:
        """The faces of the frame before, found again by R-Net and O-Net around their boxes, at scale `s`."""
        h, w = image.shape[:2]
        boxes = np.stack([f.box for f in faces])
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).max(1, keepdims=True)
        # a few candidates around each box, as the first stage would propose: NMS keeps the best
        shifts = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]]) * self.cfg.track_shift
        boxes = np.concatenate([np.hstack([centre + d * side - pad * side / 2, centre + d * side + pad * side / 2])
                                for d in shifts for pad in (1.0, self.cfg.track_pad)])
        # only the region around the boxes: cheaper than the whole frame
        x0, y0 = np.clip(np.floor(boxes[:, :2].min(0)) - 2, 0, None).astype(int)
        x1, y1 = np.minimum(np.ceil(boxes[:, 2:].max(0)) + 2, [w, h]).astype(int)
        region = scale_image(image[y0:y1, x0:x1], s)
        (b, p), = self._cascade.refine(region[None], (boxes - [x0, y0, x0, y0]) * s, np.zeros(len(boxes)),
                                       rnet=self.cfg.track_rnet, iou=self.cfg.track_merge,
                                       keep=self.cfg.track_keep)
        return self._faces(image, b, p, s, crops, (x0, y0))

    def _frame_faces(self, frames: list[Frame], crops: bool) -> list[FrameFaces]:
        found = self.detect([f.image for f in frames], crops)
        return [FrameFaces(f.index, f.t, f.image.shape[1], f.image.shape[0], faces)
                for f, faces in zip(frames, found)]


def scale_image(image: np.ndarray, s: float) -> np.ndarray:
    """The image scaled by `s` (area interpolation; every side at least 1 px), or itself at 1."""
    if s == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


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
