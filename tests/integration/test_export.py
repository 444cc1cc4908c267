"""`deepfake-detect export`: one self-contained model.onnx; bundles written with the usual file modes; both
shipped models export (to a copy) and score the same; the shipped bundles are never written to."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pytest
import torch

from detector.bundle import STARTER, BundleMeta, save_bundle
from detector.cli import main
from detector.config import AudioConfig
from detector.models import create_model
from detector.samples import chirp
from detector.scoring.scorer import Scorer
from detector.export import OnnxNet
from detector.bundle import load_bundle


def test_export_writes_one_self_contained_file_with_the_usual_modes(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    bundle = save_bundle(tmp_path / "audio", create_model("lcnn", width=8), BundleMeta(
        modality="audio", family="lcnn", model={"width": 8}, audio=AudioConfig(window_s=1.0, hop_s=0.5)))
    assert main(["export", "--checkpoint", str(bundle)]) == 0
    files = ["MODEL_CARD.md", "bundle.json", "model.onnx", "model.safetensors"]
    assert sorted(p.name for p in bundle.iterdir()) == files
    assert {p.name: p.stat().st_mode & 0o777 for p in bundle.iterdir()} == dict.fromkeys(files, 0o666 & ~umask)
    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer)


def test_the_shipped_face_model_exports_to_a_copy_and_scores_the_same_under_onnxruntime(tmp_path, media_dir):
    copy = tmp_path / "face"
    shutil.copytree(STARTER / "visual", copy)
    assert main(["export", "--checkpoint", str(copy)]) == 0
    path = media_dir / "astronaut.jpg"
    by_torch = Scorer(copy, None, device="cpu").score(path)
    by_onnx = Scorer(copy, None, device="cpu", runtime="onnx").score(path)
    assert abs(by_onnx.visual.score - by_torch.visual.score) < 1e-3  # fp16 weights, fp32 graph


def test_the_shipped_voice_model_exports_to_a_copy_and_gives_the_same_logits(tmp_path):
    copy = tmp_path / "voice"
    shutil.copytree(STARTER / "audio", copy)
    assert main(["export", "--checkpoint", str(copy)]) == 0
    net, meta = load_bundle(copy)
    n = round(meta.audio.window_s * meta.audio.sample_rate)  # every window scoring feeds it has this length
    rng = np.random.default_rng(0)
    windows = torch.from_numpy(np.stack([np.resize(chirp(2.0), n), rng.normal(0, 0.1, n)]).astype(np.float32))
    by_onnx = OnnxNet(copy / "model.onnx")(windows).numpy()
    np.testing.assert_allclose(by_onnx, net(windows).detach().numpy(), atol=1e-3)


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_exporting_a_shipped_bundle_in_place_is_refused_in_one_line(modality, capsys):
    assert main(["export", "--checkpoint", str(STARTER / modality)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the shipped bundles are read-only; copy" in err
    assert not (STARTER / modality / "model.onnx").exists()
