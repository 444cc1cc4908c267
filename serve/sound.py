"""A picture of an upload's sound for reviewers: its waveform over its spectrogram, on the time axis of the
page's charts. numpy does the short-time Fourier transform (librosa's first call compiles for seconds)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from detector.frontend.media import load_audio

WIDTH, WAVE_H, SPEC_H = 1220, 48, 128  # pixels: twice the charts' plot width, for sharp lines
RATE, N_FFT = 16_000, 512


def sound_picture(path: str | Path) -> bytes:
    """PNG: the waveform's envelope per column above the log-power spectrogram (0-8 kHz, low at the bottom)."""
    wave = load_audio(path, sample_rate=RATE)
    if len(wave) < N_FFT:
        raise ValueError("no sound track long enough to draw")
    cols = np.array_split(wave, WIDTH)
    lo, hi = np.array([c.min() for c in cols]), np.array([c.max() for c in cols])
    peak = max(np.abs(wave).max(), 1e-6)
    top = np.full((WAVE_H, WIDTH, 3), 255, np.uint8)
    rows = np.arange(WAVE_H)[:, None]
    y_hi, y_lo = (WAVE_H / 2 * (1 - hi / peak)).astype(int), (WAVE_H / 2 * (1 - lo / peak)).astype(int)
    top[(rows >= y_hi) & (rows <= y_lo)] = (31, 119, 180)
    starts = np.linspace(0, len(wave) - N_FFT, WIDTH).astype(int)
    frames = wave[starts[:, None] + np.arange(N_FFT)] * np.hanning(N_FFT)
    power = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10)  # (WIDTH, 257)
    power = np.clip((power - (power.max() - 80)) / 80, 0, 1)  # the top 80 dB
    spec = Image.fromarray((colormaps["magma"](power.T[::-1])[..., :3] * 255).astype(np.uint8)).resize((WIDTH, SPEC_H))
    out = Image.new("RGB", (WIDTH, WAVE_H + SPEC_H), "white")
    out.paste(Image.fromarray(top), (0, 0))
    out.paste(spec, (0, WAVE_H))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()
