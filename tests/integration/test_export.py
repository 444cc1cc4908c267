"""`deepfake-detect export`: one self-contained model.onnx; bundles written with the usual file modes."""

from __future__ import annotations

import os

import onnx

from detector.bundle import BundleMeta, save_bundle
from detector.cli import main
from detector.config import AudioConfig
from detector.models import create_model


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
