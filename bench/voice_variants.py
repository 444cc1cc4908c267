"""Voice recipe variants beside the shipped one, leave-one-source-out: Whisper's other blocks, its
input with each band's mean removed, and room effects in the training augmentation.

    .venv/bin/python bench/voice_variants.py blocks     # about 10 minutes on one core
    .venv/bin/python bench/voice_variants.py room       # about 20 minutes on one core

`blocks`: on the recipe's own windows (seed 0), the mean and spread over time of the first three
blocks of Whisper's encoder (`stem`: the convolutions before the first block; `b1`..`b3`, `b2` the shipped
`whisper_mid`), of the second block on a log-mel with each band's mean over the window removed
(`b2_cmn`, cepstral mean normalisation: a fixed channel's colour gone), and the second block's
10/50/90% quantiles over time (`b2_q`); each set with or without the shipped GE2E, band and mel
statistics (`rest`). `room`: the shipped features at seeds 0 and 1, each beside the same windows
with a room added to the augmented ones (reverberation for 35% of them; pink noise or sustained tones
at 5-25 dB SNR for 35%; both classes alike), the room's draws from a stream of their own so the
pairs differ by the room alone. Lines as `bench/voice_features.py` prints them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.signal import fftconvolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_features import CS, columns_of, line, table  # noqa: E402

from detector.models import create_model  # noqa: E402
from detector.recipes import voice  # noqa: E402
from detector.training.audio_data import augment  # noqa: E402

REST = ("hstats", "bands", "mel")
BLOCK_SETS = [("b2",), ("b1",), ("b3",), ("stem",), ("b2_cmn",), ("b1", "b2"), ("b2", "b3"), ("b2", "b2_cmn"),
              ("b2", "b2_q")]


def pooled(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, 2C): the mean and spread over time."""
    return torch.cat([x.mean(1), x.std(1)], 1)


def block_features(data: Path) -> tuple[dict, dict[str, slice]]:
    """The recipe's features with every block's, hooked onto Whisper as the recipe runs it."""
    names = ("whisper_mid", "whisper_top") + REST  # the top feature makes the encoder run all four blocks
    net = create_model("voice_probe", features=names).eval()
    voice.load_pretrained(net)
    whisper, extra = net.whisper, {k: [] for k in ("stem", "b1", "b2", "b3", "b2_cmn", "b2_q")}

    def cmn_log_mel(wave: torch.Tensor) -> torch.Tensor:
        x = type(whisper).log_mel(whisper, wave)
        return x - x.mean(2, keepdim=True) + x.mean((1, 2), keepdim=True)

    def before(module, args) -> None:
        wave = args[0]
        x = torch.nn.functional.gelu(whisper.conv1(whisper.log_mel(wave)))
        extra["stem"].append(pooled(torch.nn.functional.gelu(whisper.conv2(x)).transpose(1, 2)))
        whisper.log_mel = cmn_log_mel
        try:  # `forward` itself, not the module's call: no hook sees this pass
            extra["b2_cmn"].append(pooled(whisper.forward(wave, depth=2)[1]))
        finally:
            del whisper.log_mel

    def after(module, args, blocks) -> None:
        for i, h in enumerate(blocks[:3]):
            extra[f"b{i + 1}"].append(pooled(h))
        q = torch.quantile(blocks[1], torch.tensor([0.1, 0.5, 0.9]), dim=1)  # (3, B, 384)
        extra["b2_q"].append(q.permute(1, 0, 2).flatten(1))

    hooks = [whisper.register_forward_pre_hook(before), whisper.register_forward_hook(after)]
    f = voice.features(net, voice.corpus(data), voice.RECIPE["windows"])
    for h in hooks:
        h.remove()
    extra = {k: torch.cat(v).numpy() for k, v in extra.items()}
    columns = columns_of(names)
    if not np.allclose(extra["b2"], f["X"][:, columns["whisper_mid"]], atol=1e-4):
        raise RuntimeError("the hooked second block differs from the recipe's whisper_mid: hooks out of step")
    width = f["X"].shape[1]
    for k, v in extra.items():
        columns[k] = slice(width, width + v.shape[1])
        width += v.shape[1]
    f["X"] = np.concatenate([f["X"]] + list(extra.values()), 1)
    return f, columns


def reverberate(wave: np.ndarray, rng: np.random.Generator, sample_rate: int = 16_000) -> np.ndarray:
    """Through a synthetic room: exponentially decaying noise (RT60 0.2-0.9 s) after a direct path."""
    rt60 = rng.uniform(0.2, 0.9)
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    rir = rng.normal(0, 1, len(t)) * np.exp(-6.9 * t / rt60)
    rir[0] = rng.uniform(2, 8) * np.abs(rir[:200]).max()
    y = fftconvolve(wave, rir)[: len(wave)]
    return (y * np.sqrt(np.mean(wave**2) / (np.mean(y**2) + 1e-12))).astype(np.float32)


def background(wave: np.ndarray, rng: np.random.Generator, sample_rate: int = 16_000) -> np.ndarray:
    """Pink-ish noise or a few sustained, swelling tones (music under speech) at 5-25 dB SNR."""
    n = len(wave)
    if rng.random() < 0.5:
        spec = np.fft.rfft(rng.normal(0, 1, n))
        bg = np.fft.irfft(spec / (np.arange(len(spec)) + 1.0) ** rng.uniform(0.5, 1.0), n)
    else:
        t = np.arange(n) / sample_rate
        bg = sum(np.sin(2 * np.pi * 110 * 2 ** (rng.integers(0, 36) / 12) * t + rng.uniform(0, 6.3)) * rng.uniform(0.3, 1)
                 for _ in range(rng.integers(2, 6)))
        bg = bg * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
    power = np.mean(wave**2) + 1e-10
    bg = bg * np.sqrt(power / 10 ** (rng.uniform(5, 25) / 10) / (np.mean(bg**2) + 1e-12))
    return (wave + bg).astype(np.float32)


def recipe_features(data: Path, seed: int, room: bool) -> tuple[dict, dict[str, slice]]:
    """The shipped features of the recipe's windows at `seed`, with or without a room in their augmentation."""
    names = voice.RECIPE["features"]
    net = create_model("voice_probe", features=names).eval()
    voice.load_pretrained(net)
    own = np.random.default_rng(seed + 1000)  # the room's draws leave the recipe's stream, so its windows, alone

    def room_augment(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if own.random() < 0.35:
            wave = reverberate(wave, own)
        if own.random() < 0.35:
            wave = background(wave, own)
        return augment(wave, rng)

    voice.augment = room_augment if room else augment  # what `training_windows` and the vocoded copies use
    try:
        f = voice.features(net, voice.corpus(data), voice.RECIPE["windows"], seed=seed)
    finally:
        voice.augment = augment
    return f, columns_of(names)


def show(label: str, f: dict, columns: dict[str, slice], feats: tuple[str, ...]) -> None:
    for C in CS:
        print(line(label, table(f, columns, feats, C), C), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("blocks", "room"))
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data} is absent: this benchmark needs ../shared/data")
    torch.set_num_threads(1)
    if args.part == "blocks":
        f, columns = block_features(args.data)
        for feats in BLOCK_SETS:
            show("+".join(feats) + " + rest", f, columns, feats + REST)
            show("+".join(feats), f, columns, feats)
    else:
        for label, seed, room in (("shipped, seed 0", 0, False), ("+ room, seed 0", 0, True), ("shipped, seed 1", 1, False),
                                  ("+ room, seed 1", 1, True)):
            f, columns = recipe_features(args.data, seed, room)
            show(label, f, columns, voice.RECIPE["features"])


if __name__ == "__main__":
    main()
