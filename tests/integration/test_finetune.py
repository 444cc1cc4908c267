"""`deepfake-detect finetune`: a face bundle trained further on a folder as `dataset export` writes it, public
crops mixed in; a new version whose bundle and card say what it started from and learned from."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import face_pair

from detector import samples
from detector.bundle import bundle_meta
from detector.cli import main
from detector.datasets import hash_split
from detector.config import FaceConfig
from detector.frontend.faces import FaceDetector
from detector.scoring.scorer import Scorer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """20 uploaders' photos as `dataset export` lays them out: a real and a self-blended fake each."""
    root = tmp_path_factory.mktemp("reviewed")
    (root / "media").mkdir()
    rng, detector = np.random.default_rng(0), FaceDetector(FaceConfig(device="cpu"))
    groups = [f"uploader{i}" for i in range(200)]
    val = [g for g in groups if hash_split(g) == "val"][:3]  # exported datasets carry no split: theirs comes from the group
    train = [g for g in groups if hash_split(g) == "train"][:17]
    rows = []
    for g in val + train:
        for label, image in enumerate(face_pair(rng, detector)):
            name = f"media/{g}_{label}.jpg"
            samples.write_image(root / name, image)
            rows.append({"path": name, "label": label, "group": g, "source": f"reviewed:{g}"})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_finetune_writes_a_new_version_that_says_where_it_came_from(bundles, reviewed, tmp_path, media_dir):
    start = bundle_meta(bundles[0])
    assert main(["finetune", "--from", str(bundles[0]), "--data", str(reviewed), "--out", str(tmp_path / "ft"),
                 "--epochs", "1", "--workers", "0"]) == 0
    built = tmp_path / "ft" / "bundle"
    meta = bundle_meta(built)
    assert meta.version != start.version and meta.input_size == start.input_size and meta.name.endswith("-finetuned")
    assert meta.training["parent"] == start.version
    assert meta.training["finetuned_on"] == {"dataset": reviewed.name, "uploads": 40, "uploaders": 20}
    card = (built / "MODEL_CARD.md").read_text()
    assert f"from version `{start.version}` on 40 reviewed uploads of 20 uploaders" in card
    assert 0 <= meta.thresholds.review <= meta.thresholds.likely_fake <= 1
    with Scorer(built, None, device="cpu") as scorer:  # it scores as any bundle does
        verdict = scorer.score(media_dir / "astronaut.jpg")
    assert verdict.models[0].version == meta.version and verdict.visual.score is not None


def test_finetune_refuses_a_voice_bundle_and_a_folder_without_labels_in_one_line(bundles, tmp_path, capsys):
    assert main(["finetune", "--from", str(bundles[1]), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "finetune takes a face bundle" in capsys.readouterr().err
    assert main(["finetune", "--from", str(bundles[0]), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a dataset from `deepfake-detect dataset export`" in capsys.readouterr().err
