"""train.py, the configs and `deepfake-detect evaluate`, end to end on generated crops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage import data

from detector.cli import main
from detector.training.cache import preprocess
from detector.datasets import manifest

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = sorted(p for kind in ("visual", "audio") for p in (ROOT / "configs" / kind).glob("*.yaml"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in TRAIN_CONFIGS])
def test_every_training_config_instantiates(path, monkeypatch):
    from lightning import LightningDataModule
    from lightning.pytorch.cli import LightningCLI

    from detector.training.detector_module import BinaryDetector

    monkeypatch.setattr(sys, "argv", ["train.py"])
    cfg = yaml.safe_load(path.read_text())
    if "pretrained" in cfg["model"]["init_args"]:
        cfg["model"]["init_args"]["pretrained"] = False  # no hub here
    cfg["trainer"] |= {"accelerator": "cpu", "precision": "32-true"}
    cli = LightningCLI(BinaryDetector, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                       run=False, args=cfg, save_config_callback=None)
    assert type(cli.model).__name__ == cfg["model"]["class_path"].rsplit(".", 1)[1]
    assert dict(cli.datamodule.hparams).items() >= cfg["data"]["init_args"].items()
    assert cli.model.net(torch.zeros(2, 3, 64, 64) if "visual" in str(path) else torch.zeros(2, 16000)).shape == (2,)


@pytest.fixture(scope="module")
def toy_crops(tmp_path_factory) -> Path:
    """64 px crops of scikit-image photos; a fake's centre is blurred and tinted (a crude swap)."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        for i in range(n):
            img = photos[i % len(photos)]
            y, x = rng.integers(0, img.shape[0] - 128), rng.integers(0, img.shape[1] - 128)
            crop = np.asarray(Image.fromarray(img[y : y + 128, x : x + 128]).resize((64, 64)))
            fake = crop.copy()
            centre = cv2.GaussianBlur(crop[16:48, 16:48], (0, 0), 3).astype(np.int16) + (70, 0, -30)
            fake[16:48, 16:48] = np.clip(centre, 0, 255)
            for label, img_out in (("real", crop), ("fake", fake)):
                out = root / split / label / f"v{i:03d}{label}_0.jpg"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img_out).save(out, quality=95)
    return root


@pytest.mark.slow
def test_train_writes_a_bundle_that_evaluate_reads(toy_crops, tmp_path):
    cache = tmp_path / "cache"
    rows = manifest("folder", toy_crops, group_regex=r"^(v\d+\w+?)_")
    preprocess(rows, cache, crops_as_is=True)
    bundle = tmp_path / "bundle"
    cfg = yaml.safe_load((ROOT / "configs/visual/cpu_small.yaml").read_text())
    cfg["model"]["init_args"] |= {"backbone": "resnet10t", "lr": 0.003}
    cfg["data"]["init_args"] |= {"cache": str(cache), "crop_size": 64, "batch_size": 16, "num_workers": 0}
    cfg["trainer"] |= {"max_epochs": 12, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False}
    cfg["trainer"]["callbacks"][1]["init_args"]["out"] = str(bundle)
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, str(ROOT / "train.py"), "fit", "--config", str(tmp_path / "toy.yaml")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["model"]["backbone"] == "resnet10t" and meta["calibration"]["method"] == "temperature"
    frontend = json.loads((cache / "frontend.json").read_text())  # how the crops were cut, recorded once
    assert meta["input_size"] == 64 and meta["faces"] == frontend["faces"] and meta["sampling"] == frontend["sampling"]
    assert meta["metrics"]["val_video"]["auc"] > 0.7  # the blurred, tinted centre is easy to learn
    assert not any(str(v).startswith("/") for v in meta["training"].values())  # no path of this machine
    assert main(["evaluate", "--checkpoint", str(bundle), "--dataset", "folder", "--root", str(toy_crops),
                 "--crops-as-is", "--split", "test", "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["video"]["n"] == 32 and report["video"]["auc"] > 0.7  # chance is 0.5
    low, high = report["video"]["auc_ci"]  # resampling whole videos
    assert low <= report["video"]["auc"] <= high and low < high
    assert report["software"].startswith("deepfake-detector ") and report["created_at"].endswith("Z")
    assert (tmp_path / "report" / "roc.png").stat().st_size > 1000
