"""Sliding windows over streamed audio, the voice gate, aggregation and upload-like augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from detector import samples
from detector.training.audio_data import augment, reencode, telephone
from detector.frontend.audio import aggregate, iter_windows, voiced_frames, voiced_windows
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


def test_only_voiced_windows_go_to_the_network_and_scores_aggregate():
    cfg = AudioConfig(window_s=1.0, hop_s=1.0)
    quiet, loud = samples.chirp(2.0) * 0.2, samples.chirp(2.0)
    wave = np.concatenate([quiet, np.zeros(32000, np.float32), loud])  # 6 s: voice, silence, voice
    segs, inputs = zip(*voiced_windows([wave[:5000], wave[5000:]], cfg))
    assert [(s.start, s.end) for s in segs] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert [x is None for x in inputs] == [False, False, True, True, False, False]
    assert all(len(x) == 16000 for x in inputs if x is not None)
    scores = [0.2, 0.4, 0.9]
    assert aggregate(scores, cfg) == pytest.approx(0.5)
    assert aggregate(scores, AudioConfig(aggregation="max")) == 0.9
    assert aggregate(scores, AudioConfig(aggregation="topk", topk=2)) == pytest.approx(0.65)
    assert aggregate([], cfg) is None  # no speech


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


def test_a_videos_audio_track_is_read_like_audio(media_dir):
    from detector.frontend.scan import ScanSettings, scan

    read = scan(media_dir / "pan.mp4", ScanSettings(audio=AudioConfig(window_s=0.5, hop_s=0.25)))
    assert read.error is None and read.segments[-1].end == pytest.approx(1.6, abs=0.07)  # the 1.6 s chirp track
    assert all(x is not None for x in read.windows)
