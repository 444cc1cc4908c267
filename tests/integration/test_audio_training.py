"""`deepfake-detect train` with an audio config, then `deepfake-detect evaluate` on the audio bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from detector import samples
from detector.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy_speech(tmp_path_factory) -> Path:
    """Chirps at random pitch and speed; a 'vocoded' copy carries a faint 6 kHz buzz."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    for split, n in (("train", 24), ("val", 10), ("test", 10)):
        for i in range(n):
            real = samples.chirp(2.0, f0=rng.uniform(100, 300), f1=rng.uniform(800, 3000)) * rng.uniform(0.3, 1.0)
            fake = real + (0.02 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
            for label, wave in (("real", real), ("fake", fake)):
                (root / split / label).mkdir(parents=True, exist_ok=True)
                samples.write_audio(root / split / label / f"s{i:03d}.wav", wave)
    return root


@pytest.mark.slow
def test_audio_training_and_evaluation(toy_speech, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/audio/cpu_small.yaml").read_text())
    cfg["data"]["init_args"] |= {"dataset": "folder", "root": str(toy_speech), "options": None,
                                 "window": 16000, "batch_size": 8, "num_workers": 0}
    cfg["trainer"] |= {"max_epochs": 6, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False}
    cfg["trainer"]["callbacks"][1]["init_args"]["out"] = str(tmp_path / "bundle")
    (tmp_path / "audio.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "fit", "--config", str(tmp_path / "audio.yaml")]) == 0
    meta = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert meta["modality"] == "audio" and meta["family"] == "lcnn" and meta["audio"]["window_s"] == 1.0 == 2 * meta["audio"]["hop_s"]
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bundle"), "--dataset", "folder",
                 "--root", str(toy_speech), "--split", "test", "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["modality"] == "audio" and report["levels"] == ["window", "file"]
    assert report["file"]["n"] == report["upload"]["n"] == 20 and "video" not in report
    assert report["window"]["n"] == 60  # 2 s files, 1 s windows every 0.5 s: 3 windows each
    assert report["file"]["auc"] > 0.8 and report["file"]["eer"] < 0.3  # chance: 0.5, 0.5
