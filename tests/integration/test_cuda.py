"""What only a GPU can show: AMP keeps the shipped models' scores, the batched cascade finds on CUDA
what it finds on CPU, and the Scorer's shared batches give CUDA the CPU's Verdicts.

Marked `cuda`: skipped where no CUDA device is present; `bench/gpu_check.sh` runs them on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector import samples
from detector.bundle import load_bundle, resolve_bundle
from detector.config import FaceConfig
from detector.frontend.faces import FaceDetector

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def _crops(n: int) -> np.ndarray:
    """(n, 224, 224, 3) uint8: the astronaut's face under n different shifts and brightnesses."""
    face = samples.astronaut()[30:254, 130:354].astype(np.float32)
    return np.stack([np.clip(np.roll(face, i, axis=1) * (0.7 + 0.03 * i), 0, 255) for i in range(n)]).astype(np.uint8)


def test_amp_keeps_the_starter_face_scores():
    net, meta = load_bundle(resolve_bundle("starter", "visual"), "cuda")
    x = torch.from_numpy(_crops(16)).cuda().permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=meta.input_size, mode="bilinear", antialias=True)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        full = torch.sigmoid(net(x).float())
        with torch.autocast("cuda", dtype=torch.float16):
            half = torch.sigmoid(net(x).float())
    assert (half - full).abs().max().item() < 0.01


def test_batched_cascade_on_cuda_finds_the_cpu_faces():
    frames = [np.ascontiguousarray(f) for f in samples.moving_crop(samples.astronaut(), 8)]
    cpu = FaceDetector(FaceConfig(device="cpu", batch_size=1))
    gpu = FaceDetector(FaceConfig(device="cuda", batch_size=8))
    expected = [[f.box for f in faces] for faces in (cpu.detect([x])[0] for x in frames)]
    found = [[f.box for f in faces] for faces in gpu.detect(frames)]
    assert [len(b) for b in found] == [len(b) for b in expected] and all(len(b) == 1 for b in expected)
    assert max(np.abs(a[0] - b[0]).max() for a, b in zip(found, expected)) < 2.0  # pixels


def test_scorer_on_cuda_gives_the_cpu_verdicts(tmp_path):
    from detector.scoring.scorer import Scorer

    paths = [samples.write_video(tmp_path / "pan.mp4", samples.moving_crop(samples.astronaut(), 24),
                                 audio=samples.chirp(2.0)),
             samples.write_image(tmp_path / "photo.png", samples.astronaut())]
    runs = {device: {v.path: v for v in Scorer(device=device).score_many(paths)} for device in ("cpu", "cuda")}
    assert runs["cuda"].keys() == runs["cpu"].keys() == {str(p) for p in paths}
    for path, want in runs["cpu"].items():
        got = runs["cuda"][path]
        assert abs(got.visual.score - want.visual.score) < 0.01
        assert (got.audio is None) == (want.audio is None)
        assert want.audio is None or abs(got.audio.score - want.audio.score) < 0.01
        # the starter models score near their thresholds: a modality's decision may flip within the
        # tolerance, and with it which modality's score the upload reports
        result = {"visual": want.visual, "audio": want.audio}
        near = any(abs(r.score - t) < 0.01 for m in want.models if (r := result[m.modality]) and r.score is not None
                   for t in (m.thresholds.review, m.thresholds.likely_fake))
        assert (got.decision == want.decision and abs(got.score - want.score) < 0.01) or near
