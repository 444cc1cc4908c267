"""LightningModule for face-crop classifiers: a timm backbone, or a family of our own (`caffe_resnet`),
with one logit."""

from __future__ import annotations

from pathlib import Path

import torch

from detector.config import FrontEndConfig
from detector.training.detector_module import BinaryDetector
from detector.models import create_model


OWN_FAMILIES = ("caffe_resnet",)  # backbone names that are model families here, not timm models


class VisualDetector(BinaryDetector):
    def __init__(self, backbone: str = "efficientnet_b0", pretrained: bool | str = False, drop_rate: float = 0.0,
                 lr: float = 3e-4, weight_decay: float = 1e-4, init_from: str | None = None):
        """`init_from`: a bundle of this backbone whose weights training starts from (fine-tuning)."""
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        self.family = backbone if backbone in OWN_FAMILIES else "timm"
        kwargs = {} if self.family != "timm" else {"backbone": backbone}
        net = create_model(self.family, pretrained=pretrained, drop_rate=drop_rate, **kwargs)
        if init_from:
            from detector.bundle import load_bundle

            net.load_state_dict(load_bundle(init_from)[0].state_dict())
        self.net = net.to(memory_format=torch.channels_last)  # ~1.6x faster steps on CPU (bench/batch_size.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def bundle_fields(self, datamodule) -> dict:
        """The input size is the data module's crop size; face settings and frame sampling are those the
        crop cache was cut with: scoring reads them from the bundle, so it sees faces as training did."""
        h, d = self.hparams, datamodule.hparams
        frontend = FrontEndConfig.model_validate_json((Path(d.cache) / "frontend.json").read_text())
        model = {"drop_rate": h.drop_rate} | ({"backbone": h.backbone} if self.family == "timm" else {})
        return dict(modality="visual", family=self.family, model=model,
                    input_size=d.crop_size, mean=self.net.mean.flatten().tolist(), std=self.net.std.flatten().tolist(),
                    faces=frontend.faces, sampling=frontend.sampling)
