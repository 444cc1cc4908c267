"""Sliding windows over streamed audio, the voice gate, window scoring and upload-like augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector import samples
from detector.audio_data import augment, reencode, telephone
from detector.audio_scoring import aggregate, iter_windows, score_chunks, voiced_frames
from detector.calibration import Calibration
from detector.config import AudioConfig


@pytest.mark.parametrize("cuts", [[], [7, 50], [1, 2, 3, 95]])
def test_windows_cover_the_stream_whatever_the_chunking(cuts):
    wave = np.arange(100, dtype=np.float32)
    chunks = np.split(wave, cuts)
    got = [(s, w.copy()) for s, w in iter_windows(chunks, 30, 20)]
    assert [s for s, _ in got] == [0, 20, 40, 60, 70]  # the last window ends at the end
    assert all(np.array_equal(w, wave[s : s + 30]) for s, w in got)
    assert [(s, len(w)) for s, w in iter_windows([wave[:10]], 30, 20)] == [(0, 10)]


def test_voice_gate_skips_silence_and_noise():
    cfg = AudioConfig()
    assert voiced_frames(samples.chirp(1.0), cfg).mean() == 1.0
    assert voiced_frames(np.zeros(16000, np.float32), cfg).mean() == 0.0
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    assert voiced_frames(noise, cfg).mean() < 0.05


class Loudness(torch.nn.Module):
    """A stand-in network whose logit is the window's RMS level: scores are predictable."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.w * x.pow(2).mean(1).sqrt() * 10


def test_score_chunks_scores_voiced_windows_only_and_aggregates():
    cfg = AudioConfig(window_s=1.0, hop_s=1.0)
    quiet, loud = samples.chirp(2.0) * 0.2, samples.chirp(2.0)
    wave = np.concatenate([quiet, np.zeros(32000, np.float32), loud])  # 6 s: voice, silence, voice
    score, segs = score_chunks(Loudness(), Calibration(), [wave[:5000], wave[5000:]], cfg, batch_size=2)
    assert [(s.start, s.end) for s in segs] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert [s.score is None for s in segs] == [False, False, True, True, False, False]
    scored = [s.score for s in segs if s.score is not None]
    assert scored[2] > scored[0]  # louder windows score higher with this stand-in
    assert score == pytest.approx(np.mean(scored))
    assert aggregate(scored, AudioConfig(aggregation="max")) == max(scored)
    assert aggregate(scored, AudioConfig(aggregation="topk", topk=2)) == pytest.approx(np.mean(sorted(scored)[-2:]))
    assert score_chunks(Loudness(), Calibration(), [np.zeros(48000, np.float32)], cfg)[0] is None  # no speech


def test_augmentations_keep_length_and_change_the_signal():
    rng = np.random.default_rng(0)
    wave = samples.chirp(2.0, f0=100, f1=7000)
    for _ in range(3):  # each codec in turn, by chance
        out = reencode(wave, rng)
        assert out.shape == wave.shape and out.dtype == np.float32
        rms = float(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(wave**2)))
        assert 0.3 < rms < 1.5  # low-bitrate codecs cut highs and ring, but the signal is there
    band = telephone(wave)
    spec = np.abs(np.fft.rfft(band))
    freqs = np.fft.rfftfreq(len(band), 1 / 16000)
    assert spec[freqs > 4000].max() < 1e-3 * spec.max()
    assert augment(wave, rng).shape == wave.shape


def test_hop_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="hop_s"):
        AudioConfig(window_s=1.0, hop_s=2.0)


def test_a_videos_audio_track_is_scored_like_audio(media_dir):
    from detector.media import iter_audio

    cfg = AudioConfig(window_s=0.5, hop_s=0.25)
    score, segs = score_chunks(Loudness(), Calibration(), iter_audio(media_dir / "pan.mp4", window_s=0.3), cfg)
    assert score is not None and segs[-1].end == pytest.approx(1.6, abs=0.07)  # the 1.6 s chirp track
    assert all(s.score is not None for s in segs)
