"""Spoofed-speech classifiers on 16 kHz mono waveforms; each network holds its own front end.

- `lcnn`: LFCC (20 coefficients + deltas, 20 ms / 10 ms, the LFCC-LCNN baseline) or log-mel
  features into a light CNN with max-feature-map activations.
- `rawnet`: raw waveform through fixed band-pass sinc filters on the mel scale, residual 1-D
  convolutions and a GRU (RawNet2-style).
Both map (B, T) float waveforms to (B,) spoof logits, for any T of at least a few hundred ms.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
import torch
from torch import nn

from detector.models import register_model

SAMPLE_RATE = 16_000


def _deltas(x: torch.Tensor) -> torch.Tensor:
    """First-order differences along time, same length: (B, F, N) -> (B, F, N)."""
    padded = nn.functional.pad(x, (1, 1), mode="replicate")
    return (padded[..., 2:] - padded[..., :-2]) / 2


class Spectral(nn.Module):
    """(B, T) -> (B, 1, F, frames): LFCC (+ deltas) or log-mel, from a 20 ms / 10 ms STFT."""

    def __init__(self, features: str = "lfcc", n_fft: int = 512, win: int = 320, hop: int = 160,
                 n_filters: int = 20, n_coef: int = 20, deltas: bool = True):
        super().__init__()
        bins = n_fft // 2 + 1
        if features == "lfcc":
            edges = np.linspace(0, bins - 1, n_filters + 2)
            k = np.arange(bins)[None, :]
            lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
            fb = np.clip(np.minimum((k - lo) / (mid - lo), (hi - k) / (hi - mid)), 0, None)
            dct = scipy.fft.dct(np.eye(n_filters), type=2, norm="ortho", axis=0)[:n_coef]
        elif features == "logmel":
            fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_filters)
            dct = None
        else:
            raise ValueError(f"unknown front end {features!r}: lfcc or logmel")
        self.n_fft, self.win, self.hop, self.deltas = n_fft, win, hop, deltas
        self.register_buffer("fb", torch.tensor(fb, dtype=torch.float32))
        self.register_buffer("dct", torch.tensor(dct, dtype=torch.float32) if dct is not None else None)
        self.register_buffer("window", torch.hann_window(win))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, self.win, self.window, return_complex=True).abs() ** 2
        x = torch.log(self.fb @ spec + 1e-7)  # (B, filters, frames)
        if self.dct is not None:
            x = self.dct @ x
        if self.deltas:
            d = _deltas(x)
            x = torch.cat([x, d, _deltas(d)], 1)
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)  # per-utterance CMVN
        return x.unsqueeze(1)


class MFM(nn.Module):
    """Max-feature-map: a convolution with 2C outputs, keeping the larger of each pair."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, 1)
        return torch.maximum(a, b)


class LCNN(nn.Module):
    def __init__(self, frontend: str = "lfcc", width: int = 32, dropout: float = 0.3):
        super().__init__()
        self.frontend = Spectral(frontend)
        w = width
        self.body = nn.Sequential(
            MFM(1, w, 5), nn.MaxPool2d(2),
            MFM(w, w, 1), nn.BatchNorm2d(w), MFM(w, 3 * w // 2, 3), nn.MaxPool2d(2), nn.BatchNorm2d(3 * w // 2),
            MFM(3 * w // 2, 3 * w // 2, 1), nn.BatchNorm2d(3 * w // 2), MFM(3 * w // 2, 2 * w, 3), nn.MaxPool2d(2),
            MFM(2 * w, 2 * w, 1), nn.BatchNorm2d(2 * w), MFM(2 * w, w, 3), nn.BatchNorm2d(w),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * w, 1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.body(self.frontend(wave))  # (B, C, F', N')
        x = x.mean(2)  # over frequency: (B, C, N')
        stats = torch.cat([x.mean(-1), x.std(-1)], 1)  # pooled over time, any length
        return self.head(stats).squeeze(1)


def _sinc_bank(n: int, kernel: int, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """(n, 1, kernel) band-pass filters with mel-spaced edges, Hamming-windowed."""
    mel = np.linspace(librosa.hz_to_mel(30.0), librosa.hz_to_mel(sr / 2 - 100), n + 1)
    hz = librosa.mel_to_hz(mel)
    t = (np.arange(kernel) - (kernel - 1) / 2) / sr
    low, high = hz[:-1, None], hz[1:, None]
    bank = 2 * high * np.sinc(2 * high * t) - 2 * low * np.sinc(2 * low * t)
    bank *= np.hamming(kernel)[None, :]
    bank /= np.abs(bank).sum(1, keepdims=True)
    return torch.tensor(bank[:, None, :], dtype=torch.float32)


class ResBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm1d(cin), nn.LeakyReLU(0.3), nn.Conv1d(cin, cout, 3, padding=1),
                                  nn.BatchNorm1d(cout), nn.LeakyReLU(0.3), nn.Conv1d(cout, cout, 3, padding=1))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.pool = nn.MaxPool1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x) + self.skip(x))


class RawNet(nn.Module):
    def __init__(self, filters: int = 32, kernel: int = 129, channels: tuple[int, ...] = (32, 32, 64, 64),
                 gru: int = 64):
        super().__init__()
        self.register_buffer("sinc", _sinc_bank(filters, kernel))
        blocks, cin = [], filters
        for c in channels:
            blocks.append(ResBlock1d(cin, c))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm1d(filters)
        self.gru = nn.GRU(cin, gru, batch_first=True)
        self.head = nn.Linear(gru, 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.conv1d(wave.unsqueeze(1), self.sinc, padding=self.sinc.shape[-1] // 2)  # (B, F, T)
        x = nn.functional.max_pool1d(x.abs(), 3)
        x = self.blocks(nn.functional.selu(self.norm(x)))  # (B, C, T / 3^5)
        _, h = self.gru(x.transpose(1, 2))
        return self.head(h[-1]).squeeze(1)


@register_model("lcnn")
def lcnn(frontend: str = "lfcc", width: int = 32, dropout: float = 0.3) -> LCNN:
    return LCNN(frontend, width, dropout)


@register_model("rawnet")
def rawnet(filters: int = 32, kernel: int = 129, gru: int = 64) -> RawNet:
    return RawNet(filters, kernel, gru=gru)

