"""LightningModule for spoofed-speech classifiers (`lcnn`, `rawnet`, ...) on fixed-length windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detector.config import AudioConfig
from detector.training.detector_module import BinaryDetector
from detector.models import create_model


class AudioDetector(BinaryDetector):
    def __init__(self, family: str = "lcnn", model: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, class_weighted: bool = True):
        """`family` from the model registry, `model` its keyword arguments; with `class_weighted`
        the spoof class is weighted by real/spoof in the training split (spoof usually dominates)."""
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        self.net = create_model(family, **(model or {}))
        self.pos_weight = 1.0

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.hparams.class_weighted and dm is not None and hasattr(dm, "pos_weight"):
            self.pos_weight = dm.pos_weight

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(self.pos_weight, device=y.device))

    def bundle_fields(self, datamodule) -> dict:
        window_s = datamodule.hparams.window / AudioConfig().sample_rate
        return dict(modality="audio", family=self.hparams.family, model=dict(self.hparams.model or {}),
                    audio=AudioConfig(window_s=window_s, hop_s=window_s / 2))  # scored as trained, half-overlapping
