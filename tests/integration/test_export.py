"""`deepfake-detect export`: one self-contained model.onnx; bundles written with the usual file modes; the
shipped face model exports (to a copy) and scores the same; what cannot export says why in one line."""

from __future__ import annotations

import os
import shutil

import onnx
import pytest

from detector.bundle import STARTER, BundleMeta, save_bundle
from detector.cli import main
from detector.config import AudioConfig
from detector.models import create_model
from detector.scoring.scorer import Scorer


def test_export_writes_one_self_contained_file_with_the_usual_modes(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    bundle = save_bundle(tmp_path / "audio", create_model("lcnn", width=8), BundleMeta(
        modality="audio", family="lcnn", model={"width": 8}, audio=AudioConfig(window_s=1.0, hop_s=0.5)))
    assert main(["export", "--checkpoint", str(bundle)]) == 0
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "model.onnx", "model.safetensors"]
    assert {p.name: p.stat().st_mode & 0o777 for p in bundle.iterdir()} == dict.fromkeys(
        ["bundle.json", "model.onnx", "model.safetensors"], 0o666 & ~umask)
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


@pytest.mark.parametrize(("modality", "message"), [
    ("visual", "the shipped bundles are read-only; copy"),
    ("audio", "a voice_probe network cannot be exported to ONNX: its features"),
])
def test_exporting_a_shipped_bundle_in_place_or_a_voice_probe_is_refused_in_one_line(modality, message, capsys):
    assert main(["export", "--checkpoint", str(STARTER / modality)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (STARTER / modality / "model.onnx").exists()
