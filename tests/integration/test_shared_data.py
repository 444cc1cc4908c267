"""Real media from ../shared/data: every clip and audio file decodes; face detection accuracy."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.config import SamplingConfig
from detector.frontend.media import SAMPLE_RATE, iter_frames, load_audio, probe

pytestmark = pytest.mark.shared_data
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_every_clip_decodes_with_faces(shared_data, detector):
    clips = sorted((shared_data / "video").rglob("*.mp4"))
    assert len(clips) >= 10
    for clip in clips:
        info = probe(clip)
        assert info.media_type == "video" and info.duration_s > 1
        frames = detector.scan(iter_frames(clip, SamplingConfig(frames=8), info=info), crops=False)
        assert len(frames) == 8
        assert np.diff([f.t for f in frames]).min() > 0
        # FF++ and DFDC clips are talking heads: a face in most sampled frames
        assert sum(1 for f in frames if f.faces) >= 6, clip


def test_every_audio_file_decodes(shared_data):
    rows = list(csv.DictReader((shared_data / "audio" / "labels.csv").open()))
    assert len(rows) >= 290
    for row in rows:
        path = shared_data / "audio" / row["path"]
        audio = load_audio(path)
        assert audio.dtype == np.float32 and audio.size > 0.5 * SAMPLE_RATE, row["path"]
        assert abs(audio.size - probe(path).duration_s * SAMPLE_RATE) <= 0.01 * SAMPLE_RATE  # resampled
        # full-scale speech may ring slightly past 1.0 through the resampler
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.1


@pytest.mark.slow
def test_face_detection_accuracy_on_photos(shared_data, detector):
    from face_accuracy import evaluate

    result = evaluate(detector, shared_data / "faces")
    print(result)
    assert result["dlib_faces_40px"] >= 20
    assert result["recall"] >= 0.9
    assert result["precision"] >= 0.8
    assert result["count_accuracy"] >= 0.8
