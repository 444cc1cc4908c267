"""`voice_probe`: frozen pretrained encoders and spectral statistics under a linear head.

Small spoof corpora overfit any network trained from scratch to their recording conditions (the
LCNN recipes stayed near chance on pages they never saw). This family learns only a linear head,
over features that generalise:
- `whisper_mid`, `whisper_top`: Whisper tiny's audio encoder (`detector.foundations.whisper`,
  trained on 680,000 hours of speech) after its second block, or after its last (with the final
  norm), as the mean and spread over time of each of its 384 channels.
- `emb`, `hstats`: the GE2E speaker encoder of Resemblyzer (Apache-2.0; 3-layer LSTM over 40-band
  mel power frames, trained on thousands of speakers) over 1.6 s partials: the mean of its
  embeddings, or the mean and spread over time of its last LSTM layer (how the voice moves).
- `bands`: the log-power spectrum in 32 linear bands, relative to each frame's mean (so loudness
  and gain say nothing), as its mean, spread and frame-to-frame change: where vocoders smear the
  harmonics and the band above 4 kHz.
- `mel`: the log-mel envelope's mean, spread and frame-to-frame change.
The head is a standardised logistic regression (scikit-learn, fitted by `detector.recipes.voice`),
stored here as buffers and one linear layer so the bundle scores without scikit-learn.
(B, T) 16 kHz waveforms -> (B,) spoof logits, for any T of at least one 1.6 s partial.
"""

from __future__ import annotations

import librosa
import torch
from torch import nn

from detector.foundations.whisper import WhisperEncoder
from detector.models import register_model

FEATURES = {"emb": 256, "hstats": 512, "bands": 96, "mel": 120, "whisper_mid": 768, "whisper_top": 768}
_WHISPER_TAPS = {"whisper_mid": 1, "whisper_top": 3}  # index of the block whose output each feature reads
_PARTIAL, _PARTIAL_HOP = 160, 80  # mel frames (10 ms) per encoder partial, and between partials


class SpeakerEncoder(nn.Module):
    """GE2E speaker encoder: (B, frames, 40) mel power -> last layer's (B, frames, 256) outputs and
    (B, 256) unit embeddings."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, (hidden, _) = self.lstm(mel)
        emb = torch.relu(self.linear(hidden[-1]))
        return out, emb / (emb.norm(dim=1, keepdim=True) + 1e-8)


class VoiceProbe(nn.Module):
    def __init__(self, features: tuple[str, ...] = ("hstats", "bands", "mel")):
        super().__init__()
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown voice features {sorted(unknown)}; known: {', '.join(FEATURES)}")
        self.features = tuple(features)
        dim = sum(FEATURES[f] for f in self.features)
        self.encoder = SpeakerEncoder()  # built always: every bundle before Whisper stores its weights
        if set(_WHISPER_TAPS) & set(self.features):
            self.whisper = WhisperEncoder()
        # 25 ms / 10 ms frames, 40 mel bands: the encoder's own front end (Resemblyzer's hparams)
        self.register_buffer("melfb", torch.tensor(librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)))
        self.register_buffer("window", torch.hann_window(400))
        self.register_buffer("shift", torch.zeros(dim))  # the head's standardisation
        self.register_buffer("scale", torch.ones(dim))
        self.head = nn.Linear(dim, 1)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, dim) features, before standardisation."""
        wave = wave / (wave.pow(2).mean(1, keepdim=True).sqrt() + 1e-8) * 10 ** (-30 / 20)  # -30 dBFS
        spec = torch.stft(wave, 400, 160, 400, self.window, return_complex=True).abs() ** 2  # (B, 201, N)
        mel = (self.melfb @ spec).transpose(1, 2)  # (B, N, 40)
        out, encoded = [], {}
        if {"emb", "hstats"} & set(self.features):
            n = mel.shape[1]
            parts = [mel[:, i : i + _PARTIAL] for i in range(0, max(1, n - _PARTIAL + 1), _PARTIAL_HOP)]
            hidden, emb = map(torch.stack, zip(*map(self.encoder, parts)))  # (P, B, frames, 256), (P, B, 256)
            encoded = {"emb": emb.mean(0),
                       "hstats": torch.cat([hidden.mean((0, 2)), hidden.std(2).mean(0)], 1)}
        taps = {name: i for name, i in _WHISPER_TAPS.items() if name in self.features}
        if taps:
            blocks = self.whisper(wave, depth=max(taps.values()) + 1)  # no block past the deepest one read
            encoded |= {name: torch.cat([blocks[i].mean(1), blocks[i].std(1)], 1) for name, i in taps.items()}
        for name in self.features:
            if name in encoded:
                out.append(encoded[name])
            elif name == "bands":
                bands = torch.stack([c.mean(1) for c in torch.log(spec + 1e-10).tensor_split(32, 1)], 1)  # (B, 32, N)
                rel = bands - bands.mean(1, keepdim=True)
                out.append(torch.cat([rel.mean(2), rel.std(2), bands.diff(dim=2).abs().mean(2)], 1))
            else:  # mel
                logmel = torch.log(mel + 1e-10)  # (B, N, 40)
                out.append(torch.cat([(logmel - logmel.mean(2, keepdim=True)).mean(1), logmel.std(1),
                                      logmel.diff(dim=1).std(1)], 1))
        return torch.cat(out, 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """(B, dim) features from `embed` -> (B,) spoof logits."""
        return self.head((features - self.shift) / self.scale).squeeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(wave))


@register_model("voice_probe")
def voice_probe(features: tuple[str, ...] | list[str] = ("hstats", "bands", "mel")) -> VoiceProbe:
    return VoiceProbe(tuple(features))
