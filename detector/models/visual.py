"""Face-crop classifiers: any timm backbone with one logit, normalisation inside the network."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from detector.models import register_model


class VisualNet(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> (B,) fake logits. Mean/std travel with the weights."""

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std).squeeze(1)


@register_model("timm")
def timm_classifier(backbone: str = "efficientnet_b0", pretrained: bool | str = False,
                    drop_rate: float = 0.0) -> VisualNet:
    """`pretrained`: False, True (timm's ImageNet weights from the hub), or a local .pth/.safetensors."""
    kwargs = {}
    if isinstance(pretrained, str):
        if not Path(pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights {pretrained} not found")
        kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained)}
    net = timm.create_model(backbone, pretrained=bool(pretrained), num_classes=1, drop_rate=drop_rate, **kwargs)
    cfg = timm.data.resolve_model_data_config(net)
    return VisualNet(net, tuple(cfg["mean"]), tuple(cfg["std"]))
