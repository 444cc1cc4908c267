"""`deepfake-detect finetune`: a face bundle trained further, or a voice bundle's head refitted, on a folder
as `dataset export` writes it, public corpora mixed in; a new version whose bundle and card say what it
started from and learned from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import face_pair

from detector import samples
from detector.bundle import bundle_meta, load_bundle, resolve_bundle
from detector.cli import main
from detector.datasets import hash_split
from detector.config import FaceConfig
from detector.frontend.faces import FaceDetector
from detector.recipes import voice
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


def test_finetune_refuses_a_folder_without_labels_in_one_line(bundles, tmp_path, capsys):
    assert main(["finetune", "--from", str(bundles[0]), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a dataset from `deepfake-detect dataset export`" in capsys.readouterr().err


def test_finetune_refuses_a_voice_bundle_whose_head_it_cannot_refit_in_one_line(bundles, reviewed, tmp_path, capsys):
    assert main(["finetune", "--from", str(bundles[1]), "--data", str(reviewed), "--out", str(tmp_path / "o")]) == 2
    assert "refits the head of `voice_probe` voice bundles, not `lcnn`" in capsys.readouterr().err


def voices(root, groups: list[str], rng) -> list[tuple[str, int, str]]:
    """A bona fide recording (a gliding tone with breath noise) and a vocoded copy of it per group."""
    rows = []
    for g in groups:
        f0 = float(rng.uniform(90, 250))
        real = (samples.chirp(4.5, f0=f0, f1=f0 * rng.uniform(2, 8)) * 0.3
                + rng.normal(0, 0.01, 72_000)).astype(np.float32)
        for label, wave in enumerate((real, voice.self_vocode(real, rng))):
            path = samples.write_audio(root / f"{g}_{label}.wav", wave)
            rows.append((str(path), label, g))
    return rows


def write_labels(folder, rows: list[tuple[str, int, str]]) -> None:
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group", "source"])
        w.writerows([(f"media/{Path(p).name}", label, g, f"reviewed:{g}") for p, label, g in rows])


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """Six uploaders' recordings as `dataset export` lays them out (two held back), and public features."""
    root, rng = tmp_path_factory.mktemp("spoken"), np.random.default_rng(1)
    (root / "reviewed" / "media").mkdir(parents=True)
    groups = [f"uploader{i}" for i in range(200)]
    chosen = [g for g in groups if hash_split(g) == "val"][:2] + [g for g in groups if hash_split(g) == "train"][:4]
    write_labels(root / "reviewed", voices(root / "reviewed" / "media", chosen, rng))
    net, _ = load_bundle(resolve_bundle("starter", "audio"))
    public = voice.features(net, voices(root, ["public0"], rng), windows=2)
    voice.save_features(root / "features.npz", public, net.features)  # as `starter voice` keeps them
    return root


def test_finetune_refits_the_voice_head_on_reviewed_recordings_with_the_public_features_mixed_in(spoken, tmp_path):
    parent = bundle_meta(resolve_bundle("starter", "audio"))
    assert main(["finetune", "--from", "starter", "--voice", "--data", str(spoken / "reviewed"),
                 "--also", str(spoken / "features.npz"), "--out", str(tmp_path / "ft")]) == 0
    built = bundle_meta(tmp_path / "ft" / "bundle")
    assert built.modality == "audio" and built.version != parent.version and built.name == "starter-voice-finetuned"
    assert built.training["parent"] == parent.version and built.training["also"] == ["features.npz"]
    assert built.training["finetuned_on"] == {"dataset": "reviewed", "uploads": 12, "uploaders": 6}
    assert built.training["pretrained"] == parent.training["pretrained"]  # the parts it stands on, and their licences
    assert built.operating_point["set_on"] == "2 real and 2 fake files of held-back uploaders"
    assert "validation split" in (tmp_path / "ft" / "bundle" / "MODEL_CARD.md").read_text()  # its figures, in its card
    with Scorer(None, tmp_path / "ft" / "bundle", device="cpu") as scorer:
        verdict = scorer.score(next((spoken / "reviewed" / "media").iterdir()))
    assert verdict.models[0].version == built.version and verdict.audio.score is not None


@pytest.mark.parametrize(("also", "says"), [
    ("foreign.npz", "features ['mel'], not this bundle's"),  # features of another model
    ("broken.npz", "not the features.npz that `starter voice` keeps"),
    ("folder", "--also for a voice bundle takes the features.npz"),  # a face crop cache, say
])
def test_voice_finetune_refuses_public_features_it_cannot_use_in_one_line(spoken, tmp_path, capsys, also, says):
    public, _ = voice.load_features(spoken / "features.npz")
    voice.save_features(tmp_path / "foreign.npz", public, ("mel",))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    (tmp_path / "folder").mkdir()
    assert main(["finetune", "--from", "starter", "--voice", "--data", str(spoken / "reviewed"),
                 "--also", str(tmp_path / also), "--out", str(tmp_path / "ft")]) == 2
    assert says in capsys.readouterr().err


def test_voice_finetune_needs_real_and_fake_recordings_among_held_back_uploaders(spoken, tmp_path, capsys):
    rows = list(csv.DictReader((spoken / "reviewed" / "labels.csv").open()))
    kept = [r for r in rows if hash_split(r["group"]) != "val" or r["label"] == "0"]  # the held-back fakes gone
    (tmp_path / "media").symlink_to(spoken / "reviewed" / "media")
    write_labels(tmp_path, [(r["path"], int(r["label"]), r["group"]) for r in kept])
    assert main(["finetune", "--from", "starter", "--voice", "--data", str(tmp_path), "--out", str(tmp_path / "ft")]) == 2
    assert "the held-back uploaders (by `group`) need real and fake recordings both" in capsys.readouterr().err
