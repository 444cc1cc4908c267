"""The scorer and `deepfake-detect score`: Verdicts per the design's contract, errors, resuming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector.bundle import BundleMeta, Thresholds, save_bundle
from detector.calibration import Calibration
from detector.config import AudioConfig
from detector.models import create_model
from detector.scoring import ErrorRecord, Scorer, Verdict, file_id


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> tuple[Path, Path]:
    """Untrained but real networks, with thresholds that split their scores."""
    root = tmp_path_factory.mktemp("bundles")
    torch.manual_seed(0)
    net = create_model("timm", backbone="resnet10t")
    visual = save_bundle(root / "visual", net, BundleMeta(
        family="timm", model={"backbone": "resnet10t"}, input_size=64, mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(), thresholds=Thresholds(likely_fake=0.99, review=0.0)))
    audio = save_bundle(root / "audio", create_model("lcnn", width=8), BundleMeta(
        kind="audio", family="lcnn", model={"width": 8}, calibration=Calibration(kind="temperature", a=0.5),
        audio=AudioConfig(window_s=1.0, hop_s=0.5), thresholds=Thresholds(likely_fake=1.0, review=1.0)))
    return visual, audio


def test_verdicts_follow_the_contract(bundles, media_dir, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\0" * 64)
    paths = [media_dir / "pan.mp4", media_dir / "coffee.png", media_dir / "chirp.wav", media_dir / "silent.mp4",
             tmp_path / "broken.mp4"]
    scorer = Scorer(*bundles, device="cpu")
    out = {Path(r.path).name: r for r in scorer.score_many(paths)}
    assert set(out) == {p.name for p in paths}
    pan = out["pan.mp4"]
    assert isinstance(pan, Verdict) and pan.id == file_id(media_dir / "pan.mp4") and pan.media_type == "video"
    assert pan.visual.frames_scored == 32 and len(pan.visual.faces) == 1
    track = pan.visual.faces[0]
    assert len(track.frames) == 32 and track.score == pytest.approx(sum(f.score for f in track.frames) / 32, abs=1e-4)
    assert pan.visual.score == track.score and pan.decision == "review"  # review threshold 0, fake 0.99
    assert pan.audio.score is not None and pan.audio.segments[0].start == 0.0  # the chirp sound track
    assert [m.kind for m in pan.models] == ["visual", "audio"] and all(len(m.version) == 16 for m in pan.models)
    assert out["coffee.png"].decision == "no_signal" and out["coffee.png"].score is None
    chirp = out["chirp.wav"]
    assert chirp.media_type == "audio" and chirp.visual is None and chirp.decision == "clear"
    assert out["silent.mp4"].audio is None and out["silent.mp4"].visual.score is not None
    broken = out["broken.mp4"]
    assert isinstance(broken, ErrorRecord) and broken.error["type"] == "CorruptMedia"
    json.loads(pan.model_dump_json())  # serialisable as is


def test_a_missing_modality_is_not_scored(bundles, media_dir):
    (verdict,) = Scorer(audio=bundles[1], device="cpu").score_many([media_dir / "pan.mp4"])
    assert verdict.visual is None and verdict.audio.score is not None and len(verdict.models) == 1
    (image,) = Scorer(audio=bundles[1], device="cpu").score_many([media_dir / "astronaut.png"])
    assert image.decision == "no_signal" and image.audio is None  # no speech and no face model
    with pytest.raises(ValueError):
        Scorer()


def test_score_command_resumes_and_never_leaves_a_corrupt_file(bundles, media_dir, tmp_path):
    exe = Path(sys.executable).with_name("deepfake-detect")
    out = tmp_path / "results.jsonl"
    args = [str(exe), "score", str(media_dir / "pan.mp4"), str(media_dir / "astronaut.jpg"), str(media_dir / "chirp.*"),
            "--visual", str(bundles[0]), "--audio", str(bundles[1]), "--out", str(out), "--frames", "4",
            "--csv", str(tmp_path / "results.csv")]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert len(lines) == 2 + 5  # pan, astronaut, five chirp.* audio files
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 8
    # a crash mid-line: the partial record goes, that upload alone is scored again
    out.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "6 already in" in r.stderr
    again = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(again) == 7 and len({x["id"] for x in again}) == 7


def test_onnx_export_scores_like_torch(bundles, media_dir, tmp_path):
    import shutil

    from detector.bundle import load_bundle
    from detector.export import example_input, export_onnx

    for bundle in bundles:
        copy = shutil.copytree(bundle, tmp_path / bundle.name)
        exe = Path(sys.executable).with_name("deepfake-detect")
        r = subprocess.run([str(exe), "export", "--checkpoint", str(copy), "--format", "onnx"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        net, meta = load_bundle(copy)
        onnx_net, _ = load_bundle(copy, runtime="onnx")
        x = example_input(meta, batch=5)
        with torch.inference_mode():
            assert torch.allclose(net(x), onnx_net(x), atol=1e-4)
    visual, audio = (tmp_path / b.name for b in bundles)
    paths = [media_dir / "pan.mp4", media_dir / "chirp.flac"]
    by_torch = {v.path: v for v in Scorer(visual, audio, device="cpu").score_many(paths)}
    by_onnx = {v.path: v for v in Scorer(visual, audio, device="cpu", runtime="onnx").score_many(paths)}
    for p in by_torch:
        assert by_onnx[p].score == pytest.approx(by_torch[p].score, abs=1e-4)
        assert by_onnx[p].decision == by_torch[p].decision
    assert export_onnx(visual).stat().st_size > 100_000
