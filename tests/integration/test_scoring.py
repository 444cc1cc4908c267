"""The scorer and `deepfake-detect score`: Verdicts per the design's contract, errors, resuming."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector.config import SCORING_THRESHOLDS, SamplingConfig
from detector.frontend.scan import file_id, scan
from detector.scoring.scorer import ErrorRecord, Scorer, Verdict


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
    assert [m.modality for m in pan.models] == ["visual", "audio"] and all(len(m.version) == 16 for m in pan.models)
    assert out["coffee.png"].decision == "no_signal" and out["coffee.png"].score is None
    chirp = out["chirp.wav"]
    assert chirp.media_type == "audio" and chirp.visual is None and chirp.decision == "clear"
    assert out["silent.mp4"].audio is None and out["silent.mp4"].visual.score is not None
    broken = out["broken.mp4"]
    assert isinstance(broken, ErrorRecord) and broken.error["type"] == "CorruptMedia"
    json.loads(pan.model_dump_json())  # serialisable as is


def test_videos_are_sampled_as_the_visual_bundle_was_trained(bundles, media_dir, tmp_path):
    import shutil

    from detector.bundle import BundleMeta

    shutil.copytree(bundles[0], tmp_path / "visual")
    meta = BundleMeta.model_validate_json((tmp_path / "visual" / "bundle.json").read_text())
    recorded = meta.model_copy(update={"sampling": SamplingConfig(frames=4)})
    (tmp_path / "visual" / "bundle.json").write_text(recorded.model_dump_json())
    (verdict,) = Scorer(tmp_path / "visual", None, device="cpu").score_many([media_dir / "pan.mp4"])
    assert verdict.visual.frames_scored == 4
    (asked,) = Scorer(tmp_path / "visual", None, device="cpu", sampling=SamplingConfig(frames=6)).score_many(
        [media_dir / "pan.mp4"])
    assert asked.visual.frames_scored == 6  # what the caller asks for wins


def test_faces_are_detected_with_the_scoring_thresholds_unless_asked_for_the_bundles(bundles):
    from detector.bundle import load_bundle

    trained = load_bundle(bundles[0])[1].faces
    loose = Scorer(bundles[0], None, device="cpu").settings.faces
    assert loose.thresholds == SCORING_THRESHOLDS != trained.thresholds
    assert loose.track_keep <= loose.thresholds[2]  # a followed face never needs more than a new one
    assert Scorer(bundles[0], None, device="cpu", detect_thresholds=None).settings.faces.thresholds == trained.thresholds


def test_a_missing_modality_is_not_scored(bundles, media_dir):
    (verdict,) = Scorer(visual=None, audio=bundles[1], device="cpu").score_many([media_dir / "pan.mp4"])
    assert verdict.visual is None and verdict.audio.score is not None and len(verdict.models) == 1
    (image,) = Scorer(visual="none", audio=bundles[1], device="cpu").score_many([media_dir / "astronaut.png"])
    assert image.decision == "no_signal" and image.audio is None  # no speech and no face model
    with pytest.raises(ValueError):
        Scorer(visual=None, audio=None)


def test_uploads_share_model_batches_and_score_as_they_would_alone(bundles, media_dir):
    paths = [media_dir / "pan.mp4", media_dir / "pan.mkv", media_dir / "chirp.wav", media_dir / "chirp.flac"]
    shared = Scorer(*bundles, device="cpu", batch_size=48, max_wait_ms=60_000)  # partly filled: at the end
    crop_batches, window_batches = [], []
    shared.crops.on_batch, shared.windows.on_batch = crop_batches.append, window_batches.append
    together = {v.path: v for v in shared.score_many(paths)}
    alone = Scorer(*bundles, device="cpu", batch_size=1)
    for p in paths:
        (one,) = alone.score_many([p])
        assert together[str(p)].score == pytest.approx(one.score, abs=1e-5) and together[str(p)].decision == one.decision
        assert [f.score for t in (one.visual.faces if one.visual else []) for f in t.frames] == pytest.approx(
            [f.score for t in (together[str(p)].visual.faces if one.visual else []) for f in t.frames], abs=1e-5)
    assert crop_batches == [48, 16]  # 32 crops from each video: the first batch holds both
    assert max(window_batches) > max(len(together[str(p)].audio.segments) for p in paths)


def test_score_command_resumes_and_never_leaves_a_corrupt_file(bundles, media_dir, tmp_path, capsys):
    from detector.cli import main

    out = tmp_path / "results.jsonl"
    args = ["score", str(media_dir / "pan.mp4"), str(media_dir / "astronaut.jpg"), str(media_dir / "chirp.*"),
            "--visual", str(bundles[0]), "--audio", str(bundles[1]), "--out", str(out), "--frames", "4",
            "--csv", str(tmp_path / "results.csv")]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 + 5  # pan, astronaut, five chirp.* audio files
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 8
    # a crash mid-line: the partial record goes, that upload alone is scored again
    out.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    capsys.readouterr()
    assert main(args) == 0 and "6 already in" in capsys.readouterr().err
    again = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(again) == 7 and len({x["id"] for x in again}) == 7


def test_onnx_export_scores_like_torch(bundles, media_dir, tmp_path):
    import shutil

    from detector.bundle import load_bundle
    from detector.cli import main
    from detector.export import example_input, export_onnx

    for bundle in bundles:
        copy = shutil.copytree(bundle, tmp_path / bundle.name)
        assert main(["export", "--checkpoint", str(copy), "--format", "onnx"]) == 0
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


@pytest.mark.slow
def test_two_ddp_processes_score_like_one(bundles, media_dir, tmp_path):
    """`score --devices 2` on CPU (gloo): each upload exactly once, the same Verdicts as one process."""
    from detector.cli import main

    exe = Path(sys.executable).with_name("deepfake-detect")
    inputs = [str(media_dir / n) for n in ("pan.mp4", "silent.mp4", "astronaut.png", "chirp.wav")]
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\0" * 64)
    inputs.append(str(tmp_path / "broken.mp4"))
    common = ["--visual", str(bundles[0]), "--audio", str(bundles[1]), "--frames", "8", "--workers", "1"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["score", *inputs, "--out", str(one), *common]) == 3  # broken.mp4 failed, as it should
    r = subprocess.run([str(exe), "score", *inputs, "--out", str(two), *common, "--devices", "2", "--accelerator", "cpu"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("this rank scored") == 2  # two processes, each with its share
    assert not list(tmp_path.glob("two.jsonl.rank*"))  # parts folded into the results file
    by_one = {x["path"]: x for x in map(json.loads, one.read_text().splitlines())}
    records = [json.loads(x) for x in two.read_text().splitlines()]
    assert sorted(x["path"] for x in records) == sorted(inputs)  # none missing, none twice
    for rec in records:
        ref = by_one[rec["path"]]
        assert rec.get("decision") == ref.get("decision") and rec.get("error") == ref.get("error")
        assert rec.get("score") == pytest.approx(ref.get("score"), abs=1e-5)  # None where neither scored


def test_fuse_fits_on_scored_uploads_and_the_scorer_decides_with_it(bundles, media_dir, tmp_path):
    from detector.cli import main
    from detector.scoring.fusion import Fusion
    from detector.scoring.results import ResultsFile

    names = ["pan.mp4", "pan.mkv", "silent.mp4", "chirp.wav", "chirp.flac", "chirp.ogg", "coffee.png"]
    with ResultsFile(tmp_path / "val.jsonl") as results:
        for v in Scorer(*bundles, device="cpu", batch_size=16).score_many([media_dir / n for n in names]):
            results.append(v)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{media_dir / n},{'fake' if i % 2 else 'real'}\n"
                                              for i, n in enumerate(names)))
    assert main(["fuse", "--results", str(tmp_path / "val.jsonl"), "--labels", str(labels),
                 "--out", str(tmp_path / "fusion.json"), "--fpr", "0.0"]) == 0
    fusion = Fusion.model_validate_json((tmp_path / "fusion.json").read_text())
    assert fusion.rule == "logistic" and fusion.fitted_on["uploads"] == 6  # the coffee photo: no face, no voice
    verdicts = list(Scorer(*bundles, device="cpu", fusion=fusion).score_many([media_dir / n for n in names]))
    for v in verdicts:
        scores = {m: getattr(v, m) and getattr(v, m).score for m in ("visual", "audio")}
        assert (v.score, v.decision) == pytest.approx(fusion.fuse(scores, {}), abs=1e-5)
    scored = [v for v in verdicts if v.score is not None]
    assert len(scored) == 6 and all(v.decision == ("likely_fake" if v.score >= fusion.thresholds.likely_fake else
                                                   "review" if v.score >= fusion.thresholds.review else "clear")
                                    for v in scored)


def test_a_declared_ai_upload_is_routed_by_its_manifest(bundles, media_dir, tmp_path):
    from detector import samples
    from detector.frontend.provenance import ProvenancePolicy

    identity = samples.test_signer()
    made = samples.sign_c2pa(media_dir / "coffee.png", tmp_path / "made.png", "image/png", identity)
    plain, routed = (Scorer(*bundles, device="cpu", provenance=ProvenancePolicy(declared_ai=route)).score_many([made])
                     for route in ("ignore", "likely_fake"))
    (plain,), (routed,) = list(plain), list(routed)
    assert plain.decision == "no_signal" and plain.provenance.declared_ai and plain.decided_by == "models"
    assert routed.decision == "likely_fake" and routed.decided_by == "provenance" and routed.score is None
    (clean,) = Scorer(*bundles, device="cpu").score_many([media_dir / "coffee.png"])
    assert clean.provenance is None and clean.decision == "no_signal"


def test_python_api_scores_paths_bytes_and_arrays(bundles, media_dir):
    from detector import Scorer as PublicScorer
    from detector.frontend.media import read_image

    scorer = PublicScorer(bundles[0], None, device="cpu")
    photo = media_dir / "astronaut.png"
    by_path, by_bytes = scorer.score(photo), scorer.score(photo.read_bytes())
    by_array = scorer.score(read_image(photo))
    assert by_bytes.id == by_path.id and by_bytes.path == "<bytes>" and by_array.path == "<array>"
    assert by_bytes.score == by_path.score and by_array.decision == by_path.decision != "no_signal"
    assert isinstance(scorer.score(b"not media"), ErrorRecord)


class _NaNNet(torch.nn.Module):
    """A network gone wrong: every output NaN."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((len(x),), float("nan"))


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_a_non_finite_model_score_is_a_model_error_not_clear(bundles, media_dir, modality):
    scorer = Scorer(*bundles, device="cpu")
    setattr(scorer, modality, (_NaNNet(), getattr(scorer, modality)[1]))
    upload = media_dir / ("astronaut.png" if modality == "visual" else "chirp.wav")
    (record,) = scorer.score_many([upload])
    assert isinstance(record, ErrorRecord) and record.error["reason"] == "model_error"
    assert modality in record.error["message"]


def test_an_upload_whose_verdict_cannot_be_made_fails_alone_and_is_answered(bundles, media_dir, monkeypatch):
    scorer = Scorer(*bundles, device="cpu")
    made = scorer._visual

    def broken_for_the_photo(job):
        if job.scan.info.media_type == "image":
            raise RuntimeError("a bug in assembling the Verdict")
        return made(job)

    monkeypatch.setattr(scorer, "_visual", broken_for_the_photo)
    records: queue.SimpleQueue = queue.SimpleQueue()
    for name in ("astronaut.png", "pan.mp4"):
        scorer.submit(scan(media_dir / name, scorer.settings), records.put)
    scorer.flush()
    out = {Path(r.path).name: r for r in (records.get(timeout=60) for _ in range(2))}  # unanswered: Empty, not a hang
    assert isinstance(out["astronaut.png"], ErrorRecord) and out["astronaut.png"].error["type"] == "RuntimeError"
    assert isinstance(out["pan.mp4"], Verdict) and out["pan.mp4"].visual.score is not None


def test_score_many_results_carry_their_input_index_and_the_scorer_closes(bundles, media_dir):
    paths = [media_dir / "pan.mp4", media_dir / "astronaut.jpg", media_dir / "astronaut.jpg", media_dir / "chirp.wav"]
    with Scorer(bundles[0], bundles[1], device="cpu", sampling=SamplingConfig(frames=4)) as scorer:
        records = list(scorer.score_many(paths, workers=2))
    assert sorted(r.index for r in records) == [0, 1, 2, 3]
    assert all(r.path == str(paths[r.index]) for r in records)
