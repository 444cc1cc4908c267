"""Metrics, calibration, self-blended images, bundles and the crop cache, on small real inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detector import samples
from detector.bundle import BundleMeta, load_bundle, save_bundle
from detector.training.cache import preprocess, read_index
from detector.scoring.calibration import fit_calibration
from detector.config import FrontEndConfig, SamplingConfig
from detector.datasets import Row
from detector.metrics import binary_report, by_video, eer, threshold_at_fpr
from detector.models import create_model
from detector.training.sbi import face_mask, self_blend


def test_eer_and_threshold_at_fpr():
    y = np.array([0] * 100 + [1] * 100)
    s = np.r_[np.linspace(0, 0.6, 100), np.linspace(0.4, 1.0, 100)]
    assert 0.1 < eer(y, s) < 0.25
    t = threshold_at_fpr(y, s, 0.01)
    assert (s[y == 0] >= t).mean() <= 0.01 and (s[y == 0] >= threshold_at_fpr(y, s, 0.1)).mean() <= 0.1
    r = binary_report(y, s, t)
    assert r["fpr"] <= 0.01 and r["n_real"] == r["n_fake"] == 100 and 0.9 < r["auc"] <= 1


def test_by_video_averages_frames():
    scores, labels, keys = by_video([0.2, 0.4, 0.9], [0, 0, 1], ["a", "a", "b"])
    assert keys == ["a", "b"] and np.allclose(scores, [0.3, 0.9]) and list(labels) == [0, 1]


def test_temperature_and_platt_calibration_lower_the_loss():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    logits = (y * 2 - 1) * 8 + rng.normal(0, 8, 2000)  # overconfident logits
    raw = binary_report(y, 1 / (1 + np.exp(-logits)))["log_loss"]
    for method in ("temperature", "platt"):
        cal = fit_calibration(logits, y, method)
        assert binary_report(y, cal(logits))["log_loss"] < raw * 0.7
    assert fit_calibration(logits, y, "temperature").a < 1  # temperature above 1 for overconfidence


def test_self_blend_changes_the_face_not_the_background():
    rng = np.random.default_rng(0)
    crop = samples.astronaut()[40:240, 130:330].copy()  # face roughly centred
    lm = np.array([[75, 62], [118, 65], [96, 89], [73, 100], [116, 102]], np.float32)
    fake = self_blend(crop, lm, rng)
    diff = np.abs(fake.astype(int) - crop.astype(int)).mean(-1)
    mask = face_mask(crop.shape[:2], lm, np.random.default_rng(1))
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    assert diff[80:100, 85:110].mean() > diff[:15, :15].mean()  # centre of the face vs a corner
    assert mask[90, 96] > 0.5 and mask[2, 2] < 0.01
    assert face_mask((100, 100), None, rng)[52, 50] > 0.5


def test_bundle_round_trip_gives_the_same_scores(tmp_path):
    net = create_model("timm", backbone="resnet10t").eval()
    meta = BundleMeta(family="timm", model={"backbone": "resnet10t"}, input_size=64,
                      mean=net.mean.flatten().tolist(), std=net.std.flatten().tolist())
    save_bundle(tmp_path / "b", net, meta)
    loaded, meta2 = load_bundle(tmp_path / "b")
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(net(x), loaded(x))
    assert len(meta2.version) == 16 and meta2.input_size == 64
    with pytest.raises(FileNotFoundError, match="bundle"):
        load_bundle(tmp_path)


def test_cache_resumes_and_records_files_without_faces(media_dir, tmp_path):
    rows = [Row(str(media_dir / "pan.mp4"), 0, "train", "pan", "gen"),
            Row(str(media_dir / "coffee.mp4"), 0, "train", "coffee", "gen"),
            Row(str(tmp_path / "missing.mp4"), 1, "test", "m", "gen")]
    cfg = FrontEndConfig(sampling=SamplingConfig(frames=4))
    counts = preprocess(rows[:1], tmp_path / "cache", cfg)
    assert counts == {"skipped": 0, "ok": 1, "no_faces": 0, "error": 0}
    counts = preprocess(rows, tmp_path / "cache", cfg)
    assert counts == {"skipped": 1, "ok": 0, "no_faces": 1, "error": 1}
    index = read_index(tmp_path / "cache")
    assert len(index) == 4 and {r["video"] for r in index} == {rows[0].path}
    assert all((tmp_path / "cache" / r["crop"]).is_file() and len(r["landmarks"]) == 5 for r in index)
    # a crash after crops but before the file was committed: its crops are not read
    with open(tmp_path / "cache" / "index.jsonl", "a") as f:
        f.write(json.dumps(index[0] | {"path": "/not/done.mp4", "crop": "crops/x/t0.jpg"}) + "\n")
    assert len(read_index(tmp_path / "cache")) == 4


def test_crop_dataset_self_blends_reals_and_balances(media_dir, tmp_path):
    from detector.training.visual_data import CropDataModule, CropDataset

    rows = [Row(str(media_dir / "pan.mp4"), 0, split, "pan", "gen") for split in ("train",)]
    preprocess(rows, tmp_path / "cache", FrontEndConfig(sampling=SamplingConfig(frames=4)))
    records = read_index(tmp_path / "cache")
    plain = CropDataset(tmp_path / "cache", records, 64, augment=False)
    blended = CropDataset(tmp_path / "cache", records, 64, augment=False, sbi=1.0)
    x0, y0, v0 = plain[0]
    x1, y1, v1 = blended[0]
    assert x0.shape == (3, 64, 64) and 0 <= x0.min() and x0.max() <= 1
    assert (y0, y1, v0, v1) == (0, 1, 0, 0)
    assert (x0 - x1).abs().mean() > 0.005  # the blend changed the face
    dm = CropDataModule(str(tmp_path / "cache"), batch_size=2, num_workers=0, crop_size=64, real_only=True, sbi=0.5)
    dm.setup()
    assert len(dm.datasets["train"]) == 4 and len(dm.datasets["val"]) == 0


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_loads_local_pretrained_weights(tmp_path, suffix):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet10t", pretrained=False)  # stands in for downloaded ImageNet weights
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"resnet10t{suffix}"
    torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
    net = create_model("timm", backbone="resnet10t", pretrained=str(path))
    loaded = net.backbone.state_dict()
    assert torch.equal(loaded["conv1.0.weight"], state["conv1.0.weight"])
    assert loaded["fc.weight"].shape == (1, 512)  # a new one-logit head
    with pytest.raises(FileNotFoundError):
        create_model("timm", backbone="resnet10t", pretrained=str(tmp_path / "absent.pth"))


def test_eer_matches_a_direct_threshold_sweep():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = rng.normal(y * 1.2, 1.0)
    best = None
    for t in np.sort(np.r_[s, np.inf]):  # every threshold: accept as spoof when score >= t
        far = np.mean(s[y == 0] >= t)  # bona fide accepted as spoof
        frr = np.mean(s[y == 1] < t)  # spoof missed
        if best is None or abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2)
    assert eer(y, s) == pytest.approx(best[1], abs=1e-9)


def test_a_crop_module_trains_on_every_crop_of_the_caches_it_also_reads(tmp_path):
    from detector.training.visual_data import CropDataModule

    face = samples.astronaut()
    caches = []
    for name, n in (("ours", 6), ("public", 4)):
        (tmp_path / name).mkdir()
        paths = [samples.write_image(tmp_path / name / f"{name}{i}.jpg", np.roll(face, 10 * i, 1)) for i in range(n)]
        rows = [Row(str(p), i % 2, split, f"g{i}", name) for i, (p, split) in
                enumerate(zip(paths, ["train", "val"] * n))]
        preprocess(rows, tmp_path / f"cache_{name}", workers=0, crops_as_is=True)
        caches.append(tmp_path / f"cache_{name}")
    dm = CropDataModule(str(caches[0]), crop_size=32, also=[str(caches[1])])
    dm.setup()
    train = dm.datasets["train"]
    assert len(train) == 3 + 4 and len(dm.datasets["val"]) == 3  # every public crop trains, none validates
    x, _, _ = train[len(train) - 1]  # read from the public cache's own folder
    assert x.shape == (3, 32, 32)
