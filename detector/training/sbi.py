"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): fakes made from a real face alone.

A real crop is blended with a slightly transformed copy of itself inside a soft face mask, which
leaves the blending boundary and colour/frequency mismatches that face swaps leave, without any
identity change for a model to latch on to.
"""

from __future__ import annotations

import cv2
import numpy as np


def face_mask(shape: tuple[int, int], landmarks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 soft mask over the inner face: an ellipse through the 5 landmarks, jittered."""
    h, w = shape
    if landmarks is None:  # a ready-made crop: the face fills the middle (crop scale 1.3)
        centre, axes = (w / 2, h * 0.52), (w * 0.3, h * 0.38)
    else:
        lm = np.asarray(landmarks, np.float32)
        eye_dist = np.linalg.norm(lm[1] - lm[0])
        centre = lm.mean(0)
        axes = (eye_dist * 1.1, max(eye_dist, lm[3:, 1].mean() - lm[:2, 1].mean()) * 1.5)
    axes = tuple(max(4.0, a * rng.uniform(0.85, 1.15)) for a in axes)
    angle = rng.uniform(-10, 10)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), angle, 0, 360, 1.0, -1)
    k = int(max(3, min(h, w) * rng.uniform(0.05, 0.15))) | 1
    return cv2.GaussianBlur(mask, (k, k), 0)


def _source_copy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The blended-in copy: colour shift, blur or sharpen, resample, and a small shift/scale."""
    out = img.astype(np.float32)
    out = out * rng.uniform(0.9, 1.1, size=3) + rng.uniform(-12, 12, size=3)  # per-channel gain/bias
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.5, 1.2))
    else:
        blur = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = cv2.addWeighted(out, 1.5, blur, -0.5, 0)  # unsharp mask
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        f = rng.uniform(0.5, 0.9)
        out = cv2.resize(cv2.resize(out, (int(w * f), int(h * f))), (w, h))
    s = rng.uniform(0.95, 1.05)
    m = np.float32([[s, 0, rng.uniform(-0.03, 0.03) * w + (1 - s) * w / 2],
                    [0, s, rng.uniform(-0.03, 0.03) * h + (1 - s) * h / 2]])
    out = cv2.warpAffine(out, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(out, 0, 255)


def self_blend(img: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 real face crop -> a self-blended fake of the same shape."""
    mask = face_mask(img.shape[:2], landmarks, rng) * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    blended = mask[..., None] * _source_copy(img, rng) + (1 - mask[..., None]) * img.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
