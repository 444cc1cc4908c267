"""Audio as the networks see it: sliding windows, a voice gate, and the windows' scores as one file score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from detector.config import AudioConfig

FRAME_S = 0.02  # voice-gate frames


@dataclass
class AudioWindow:
    """Where one window of the sound track lies and how much of it is voice; its score comes from the model."""

    start: float  # seconds
    end: float
    voiced: float  # share of 20 ms frames that look like voice
    score: float | None = None  # calibrated spoof probability; None: not speech, not scored

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "voiced": round(self.voiced, 3),
                "score": None if self.score is None else round(self.score, 5)}


def voiced_frames(wave: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """(frames,) bool: loud enough (dBFS above `vad_db`) and not noise-flat (spectral flatness)."""
    n = int(FRAME_S * cfg.sample_rate)
    frames = wave[: len(wave) // n * n].reshape(-1, n)
    if not len(frames):
        return np.zeros(0, bool)
    loud = 10 * np.log10(np.mean(frames**2, 1) + 1e-12) > cfg.vad_db
    power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2 + 1e-12
    flatness = np.exp(np.mean(np.log(power), 1)) / np.mean(power, 1)
    return loud & (flatness < cfg.max_flatness)


def iter_windows(chunks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, samples) windows over a stream of chunks, every `hop` samples (hop <= window);
    a last window ends where the audio ends, and audio shorter than a window comes out whole."""
    buf = np.zeros(0, np.float32)
    dropped = np.zeros(0, np.float32)  # the samples just before buf, enough for the last window
    offset = covered = 0  # buf[0]'s sample index; end of the last window given out
    for chunk in chunks:
        buf = np.concatenate([buf, chunk])
        while len(buf) >= window:
            yield offset, buf[:window]
            covered = offset + window
            dropped, buf, offset = buf[:hop], buf[hop:], offset + hop
    total = offset + len(buf)
    if total > covered:
        tail = np.concatenate([dropped, buf])[-window:]
        yield total - len(tail), tail


def aggregate(scores: list[float], cfg: AudioConfig) -> float | None:
    if not scores:
        return None
    s = np.sort(np.asarray(scores))[::-1]
    return float({"mean": s.mean(), "max": s[0], "topk": s[: cfg.topk].mean()}[cfg.aggregation])


def voiced_windows(chunks: Iterable[np.ndarray], cfg: AudioConfig = AudioConfig()
                   ) -> Iterator[tuple[AudioWindow, np.ndarray | None]]:
    """Every window's AudioWindow, with the network's input when it is voiced enough to score."""
    sr = cfg.sample_rate
    window, hop = int(round(cfg.window_s * sr)), int(round(cfg.hop_s * sr))
    for start, samples in iter_windows(chunks, window, hop):
        voiced = voiced_frames(samples, cfg)
        seg = AudioWindow(start / sr, (start + len(samples)) / sr, float(voiced.mean()) if len(voiced) else 0.0)
        yield seg, _repeat(samples, window) if seg.voiced >= cfg.min_voiced else None


def _repeat(wave: np.ndarray, n: int) -> np.ndarray:
    """A short window is tiled to the network's length, as in training."""
    return wave if len(wave) >= n else np.tile(wave, n // max(1, len(wave)) + 1)[:n]
