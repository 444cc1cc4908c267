"""The starter models' plumbing: bundle names, fp16 stamping, leave-one-source-out tables, splits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from detector.bundle import BundleMeta, Thresholds, load_bundle, resolve_bundle, save_bundle
from detector.models import create_model
from detector.recipes.loso import held_out_row, markdown
from detector.recipes.operating import SLOPE, fit_operating_point, stamp

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_names_resolve(tmp_path, monkeypatch):
    import detector.bundle as b

    assert resolve_bundle(None, "visual") is None and resolve_bundle("none", "audio") is None
    assert resolve_bundle(tmp_path, "visual") == tmp_path
    monkeypatch.setattr(b, "STARTER", tmp_path)
    with pytest.raises(FileNotFoundError, match="no starter audio model"):
        resolve_bundle("starter", "audio")


def test_stamped_fp16_bundle_scores_as_fp32(tmp_path):
    torch.manual_seed(0)
    net = create_model("lcnn", width=8).eval()
    bundle = save_bundle(tmp_path / "b", net, BundleMeta(modality="audio", family="lcnn", model={"width": 8}))
    x = torch.randn(3, 16_000)
    with torch.inference_mode():
        before = net(x)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    logits = rng.normal(labels * 2.0, 1.0)
    operating = fit_operating_point(logits, labels, np.arange(200))
    stamp(bundle, operating, loso=[held_out_row("x", labels, logits, np.arange(200))], name="starter-test",
          data={"files": 200})
    net16, meta = load_bundle(bundle)
    with torch.inference_mode():
        after = net16(x)
    assert torch.allclose(before, after, atol=1e-3)
    assert meta.name == "starter-test" and not meta.demo and [r["held_out"] for r in meta.metrics["loso"]] == ["x"]
    weights = load_file(str(bundle / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert meta.version == hashlib.sha256((bundle / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert meta.operating_point["set_on"].startswith(f"{(labels == 0).sum()} real and {labels.sum()} fake")


def test_operating_point_neither_saturates_nor_collapses():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    # separated but on a small scale: the unbounded fit would sharpen them into 0s and 1s
    far_apart = fit_operating_point((2 * labels - 1) * 0.5 + rng.normal(0, 0.05, 400), labels, np.arange(400))
    useless = fit_operating_point(rng.normal(0, 1.0, 400), labels, np.arange(400))
    assert far_apart["calibration"].a == pytest.approx(SLOPE[1])
    assert far_apart["calibration"](np.array([0.5])) < 0.75  # not a wall of 1s
    assert useless["calibration"].a == pytest.approx(SLOPE[0])
    negatives = np.sort(useless["calibration"](rng.normal(0, 1.0, 1000)))
    assert negatives[-1] - negatives[0] > 0.2  # still spread out, not a wall of one value
    t = far_apart["thresholds"]
    assert 0 < t.review <= t.likely_fake < 1


def test_a_video_is_scored_by_its_most_suspicious_face_track_as_the_scorer_does():
    from detector.metrics import by_upload

    # video a: a real face (0.1, 0.1) beside a swapped one (0.9, 0.7); b: one track (0.4, 0.6)
    scores, labels = [0.1, 0.9, 0.1, 0.7, 0.4, 0.6], [1, 1, 1, 1, 0, 0]
    videos, tracks = ["a", "a", "a", "a", "b", "b"], [0, 1, 0, 1, 0, 0]
    s, y, keys = by_upload(scores, labels, videos, tracks)
    assert keys == ["a", "b"] and s.tolist() == pytest.approx([0.8, 0.5]) and y.tolist() == [1, 0]
    # the thresholds sit on those scores: the mean over all of a's crops (0.45) would put a below b
    op = fit_operating_point(np.log(np.array(scores) / (1 - np.array(scores))), labels, videos, tracks=tracks)
    assert op["held_out"]["auc"] == 1.0


def test_held_out_row_has_counts_and_group_bootstrap_intervals():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 50)
    scores = labels + rng.normal(0, 0.8, 100)
    groups = np.arange(100) // 2  # pairs of items share a group
    row = held_out_row("page", labels, scores, groups)
    assert (row["n_real"], row["n_fake"], row["groups"]) == (50, 50, 50)
    lo, hi = row["auc_ci"]
    assert lo < row["auc"] < hi and hi - lo < 0.3
    assert "| page | 50 / 50 |" in markdown([row], "files")


def test_a_clips_frames_count_as_one_upload_in_the_held_out_table():
    from detector.recipes.face import upload_of

    frames = [f"/d/images/ffpp_c40_frames/{label}/frame_{i:03d}.jpg" for label in ("real", "fake") for i in range(16)]
    assert {upload_of(f) for f in frames} == {"ffpp_c40_frames/real", "ffpp_c40_frames/fake"}
    others = ["/d/images/dfdc_faces/abc.jpg", "/d/video/ffpp/c23/000.mp4"]  # an image, a video: themselves
    assert [upload_of(v) for v in others] == others


def test_crop_splits_hold_one_source_out(tmp_path):
    from PIL import Image

    from detector.training.visual_data import CropDataModule

    index, files = [], []
    for i, (path, split) in enumerate([("/d/ffpp/a.mp4", "train"), ("/d/dfdc/b.jpg", "test"), ("/d/dfdc/c.jpg", "val"),
                                       ("/d/dfdc/d.jpg", "train"), ("/d/ffpp/e.mp4", "test")]):
        (tmp_path / "crops").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "crops" / f"{i}.jpg")
        index.append({"path": path, "label": i % 2, "split": split, "group": str(i), "source": "s", "video": path,
                      "crop": f"crops/{i}.jpg"})
        files.append({"path": path, "status": "ok"})
    (tmp_path / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in index))
    (tmp_path / "files.jsonl").write_text("".join(json.dumps(r) + "\n" for r in files))

    def splits(**kw):
        dm = CropDataModule(str(tmp_path), num_workers=0, crop_size=8, **kw)
        dm.setup()
        return {s: sorted(r["path"][3:] for r in ds.records) for s, ds in dm.datasets.items()}

    assert splits(holdout="/ffpp/") == {"train": ["dfdc/b.jpg", "dfdc/d.jpg"], "val": ["dfdc/c.jpg"],
                                        "test": ["ffpp/a.mp4", "ffpp/e.mp4"]}
    assert splits(holdout="/dfdc/", holdout_split="test")["test"] == ["dfdc/b.jpg"]
    assert splits(merge_test=True)["test"] == [] and "ffpp/e.mp4" in splits(merge_test=True)["train"]


def test_thresholds_travel_in_every_verdict(bundles, media_dir):
    from detector.scoring.scorer import Scorer

    (v,) = Scorer(*bundles, device="cpu").score_many([media_dir / "pan.mp4"])
    assert [(m.modality, m.thresholds) for m in v.models] == [("visual", Thresholds(likely_fake=0.99, review=0.0)),
                                                          ("audio", Thresholds(likely_fake=1.0, review=1.0))]


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("configs", "starter").glob("face*.yaml")), ids=lambda p: p.name)
def test_face_recipe_configs_name_recipe_settings_and_build(path):
    from detector.recipes.face import RECIPE
    from detector.training.visual_module import VisualDetector

    overrides = yaml.safe_load(path.read_text())
    assert set(overrides) <= set(RECIPE)
    r = {**RECIPE, **overrides}
    assert VisualDetector(backbone=r["backbone"], lr=r["lr"]).net(
        torch.zeros(1, 3, r["input_size"], r["input_size"])).shape == (1,)


def test_a_recipe_setting_that_does_not_exist_is_one_line(tmp_path, capsys):
    from detector.cli import main

    (tmp_path / "r.yaml").write_text("epoch: 3\n")
    assert main(["starter", "face", "--recipe", str(tmp_path / "r.yaml"), "--cache", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"deepfake-detect starter: error: {tmp_path / 'r.yaml'}: not a face recipe setting: epoch"
