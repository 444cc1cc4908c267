"""The MTCNN cascade over a batch of frames, with facenet-pytorch's networks and bundled weights.

Same three stages as `facenet_pytorch.models.utils.detect_face`; the difference is speed: the
candidate boxes of stages 2 and 3 are cut and resized in one `roi_align` call instead of one
interpolation per box, and the pyramid is built with OpenCV; on CPU those steps took half of
facenet-pytorch's time.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, generateBoundingBox, rerec
from torchvision.ops import batched_nms, roi_align


class Cascade(torch.nn.Module):
    def __init__(self, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()  # weights load from the package
        self.to(memory_format=torch.channels_last)  # ~25% faster convolutions and pooling on CPU
        self.thresholds = thresholds
        self.factor = factor

    @torch.inference_mode()
    def forward(self, images: np.ndarray, min_face: float = 20) -> list[tuple[np.ndarray, np.ndarray]]:
        """(B, H, W, 3) uint8 -> per image (boxes (k, 5) x1 y1 x2 y2 prob, landmarks (k, 5, 2)).

        `min_face` is the smallest face side in pixels to look for (12 at the least).
        """
        x = _normalise(images, self.device)  # (B, 3, H, W)
        B = len(images)
        boxes, inds = self._proposals(images, max(12.0, min_face))
        boxes, inds = self._refine(x, boxes, inds)
        boxes, inds, points = self._output(x, boxes, inds)
        boxes, inds, points = boxes.cpu().numpy(), inds.cpu().numpy(), points.cpu().numpy()
        return [(boxes[inds == b], points[inds == b]) for b in range(B)]

    @torch.inference_mode()
    def refine(self, images: np.ndarray, boxes: np.ndarray, inds: np.ndarray,
               rnet: bool = True, iou: float = 0.7, keep: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stages 2 (optional) and 3 only, on known boxes (N, 4) of images `inds`: as `forward`.

        `iou`: stage 2's survivors are merged (NMS) at this overlap before stage 3; `keep`: stage 3's
        threshold instead of the cascade's.
        """
        x = _normalise(images, self.device)
        b = rerec(torch.tensor(np.asarray(boxes), dtype=torch.float32, device=self.device))
        i = torch.as_tensor(np.asarray(inds), dtype=torch.long, device=self.device)
        if rnet:
            b, i = self._refine(x, b, i, iou)
        b, i, points = self._output(x, b, i, keep)
        b, i, points = b.cpu().numpy(), i.cpu().numpy(), points.cpu().numpy()
        return [(b[i == k], points[i == k]) for k in range(len(images))]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _proposals(self, images: np.ndarray, min_face: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: P-Net over an image pyramid, then NMS per scale and per image."""
        h, w = images.shape[1:3]
        scale = 12.0 / min_face
        side = min(h, w) * scale
        found, found_inds = [], []
        level = list(images)
        while side >= 12:
            size = (int(w * scale + 1), int(h * scale + 1))
            # each level from the one before, by OpenCV: many times faster than torch's area resize
            level = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in level]
            reg, probs = self.pnet(_normalise(np.stack(level), self.device))
            b, i = generateBoundingBox(reg, probs[:, 1], scale, self.thresholds[0])
            keep = batched_nms(b[:, :4], b[:, 4], i, 0.5)
            found.append(b[keep])
            found_inds.append(i[keep])
            scale *= self.factor
            side *= self.factor
        if not found:  # every image is smaller than the smallest face looked for: no proposals
            return torch.zeros(0, 5, device=self.device), torch.zeros(0, dtype=torch.long, device=self.device)
        boxes, inds = torch.cat(found), torch.cat(found_inds)
        keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[keep], inds[keep]
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        reg = boxes[:, 5:9]
        boxes = torch.stack([boxes[:, 0] + reg[:, 0] * bw, boxes[:, 1] + reg[:, 1] * bh,
                             boxes[:, 2] + reg[:, 2] * bw, boxes[:, 3] + reg[:, 3] * bh, boxes[:, 4]], 1)
        return rerec(boxes), inds

    def _refine(self, x, boxes, inds, iou: float = 0.7):
        """Stage 2: R-Net on 24 px crops of the proposals; NMS at `iou`."""
        if not len(boxes):
            return boxes, inds
        reg, prob = self.rnet(_crops(x, boxes, inds, 24))
        score = prob[:, 1]
        ok = score > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], score[ok, None]], 1)
        inds, reg = inds[ok], reg[ok]
        keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, iou)
        return rerec(bbreg(boxes[keep], reg[keep])), inds[keep]

    def _output(self, x, boxes, inds, threshold: float | None = None):
        """Stage 3: O-Net on 48 px crops: final boxes, probabilities and five landmarks."""
        if not len(boxes):
            return boxes.reshape(0, 5), inds, torch.zeros(0, 5, 2)
        reg, pts, prob = self.onet(_crops(x, boxes, inds, 48))
        score = prob[:, 1]
        ok = score > (self.thresholds[2] if threshold is None else threshold)
        boxes = torch.cat([boxes[ok, :4], score[ok, None]], 1)
        inds, reg, pts = inds[ok], reg[ok], pts[ok]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack([bw * pts[:, :5] + boxes[:, :1] - 1, bh * pts[:, 5:] + boxes[:, 1:2] - 1], 2)
        boxes = bbreg(boxes, reg)
        keep = batched_nms_numpy(boxes[:, :4], boxes[:, 4], inds, 0.7, "Min")
        return boxes[keep], inds[keep], points[keep]


def _normalise(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1], as MTCNN was trained."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()  # a channels-last view
    return (x - 127.5) * 0.0078125


def _crops(x: torch.Tensor, boxes: torch.Tensor, inds: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size) crops of `boxes` from the batch `x`, in one call."""
    rois = torch.cat([inds[:, None].to(x.dtype), boxes[:, :4] - 1], 1)  # 1-based pixel boxes
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=False)
