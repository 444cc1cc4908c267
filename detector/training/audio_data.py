"""LightningDataModule for spoofed-speech detection over any dataset adapter's manifest."""

from __future__ import annotations

import io

import av
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from detector.datasets import Row, manifest
from detector.frontend.media import MediaError, load_audio
from detector.training.visual_data import seed_worker

_CODECS = (("mp3", "libmp3lame", (24_000, 64_000)), ("ipod", "aac", (24_000, 64_000)),
           ("ogg", "libopus", (12_000, 32_000)))


def reencode(wave: np.ndarray, rng: np.random.Generator, sample_rate: int = 16_000) -> np.ndarray:
    """Through MP3, AAC or Opus at a random bitrate and back, as uploads are."""
    fmt, codec, (lo, hi) = _CODECS[rng.integers(len(_CODECS))]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        rate = 48_000 if codec == "libopus" else sample_rate
        stream = out.add_stream(codec, rate=rate)
        stream.layout, stream.bit_rate = "mono", int(rng.integers(lo, hi))
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = [o.to_ndarray().reshape(-1) for f in inp.decode(audio=0) for o in resampler.resample(f)]
    decoded = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return fit_length(decoded, len(wave))


def telephone(wave: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
    """Keep 300-3400 Hz, as a phone line does."""
    spec = np.fft.rfft(wave)
    freqs = np.fft.rfftfreq(len(wave), 1 / sample_rate)
    spec[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spec, len(wave)).astype(np.float32)


def augment(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.3:
        wave = reencode(wave, rng)
    if rng.random() < 0.15:
        wave = telephone(wave)
    if rng.random() < 0.3:  # noise at 10-40 dB SNR
        power = float(np.mean(wave**2)) + 1e-10
        wave = wave + rng.normal(0, np.sqrt(power / 10 ** (rng.uniform(10, 40) / 10)), len(wave)).astype(np.float32)
    if rng.random() < 0.5:
        wave = wave * np.float32(10 ** (rng.uniform(-6, 6) / 20))
    return wave


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: repeat a short clip, cut a long one."""
    if len(wave) == 0:
        return np.zeros(n, np.float32)
    if len(wave) < n:
        wave = np.tile(wave, n // len(wave) + 1)
    return wave[:n].astype(np.float32)


class AudioDataset(Dataset):
    """(wave (window,) float32, label, file index). Training takes a random window of each file,
    evaluation the first; decoded files are kept in memory per worker."""

    def __init__(self, rows: list[Row], window: int, train: bool, seed: int = 0):
        self.rows, self.window, self.train = rows, window, train
        self.rng = np.random.default_rng(seed)
        self._decoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        if i not in self._decoded:
            try:
                self._decoded[i] = load_audio(self.rows[i].path)
            except MediaError:
                self._decoded[i] = np.zeros(0, np.float32)  # counted as silence; listed by `evaluate`
        wave = self._decoded[i]
        if self.train and len(wave) > self.window:
            start = int(self.rng.integers(0, len(wave) - self.window))
            wave = wave[start : start + self.window]
        wave = fit_length(wave, self.window)
        if self.train:
            wave = augment(wave, self.rng)
        return torch.from_numpy(np.ascontiguousarray(wave)), torch.tensor(self.rows[i].label, dtype=torch.float32), i


class AudioDataModule(L.LightningDataModule):
    def __init__(self, dataset: str, root: str, options: dict | None = None, window: int = 64_600,
                 batch_size: int = 32, num_workers: int = 2, val_split: str = "val", seed: int = 0):
        """`dataset`/`root`/`options`: a dataset adapter and its keywords (see detector/datasets)."""
        super().__init__()
        self.save_hyperparameters()
        self.datasets: dict[str, AudioDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        rows = manifest(h.dataset, h.root, **(h.options or {}))
        for split in ("train", h.val_split, "test"):
            self.datasets[split] = AudioDataset([r for r in rows if r.split == split], h.window,
                                                train=split == "train", seed=h.seed)
        labels = np.array([r.label for r in self.datasets["train"].rows])
        self.pos_weight = float((labels == 0).sum() / max(1, labels.sum())) if len(labels) else 1.0

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["train"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets[self.hparams.val_split])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"])

    def _loader(self, ds: AudioDataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0,
                          worker_init_fn=seed_worker)

