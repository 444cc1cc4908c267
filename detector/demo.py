"""`deepfake-detect demo`: the whole pipeline on a fresh machine, from media built in code.

Real faces come from scikit-image's public-domain astronaut photo; fakes are its self-blended
copies. Real "voices" are harmonic sweeps; fakes are the same sounds re-synthesised with random
phase (what a crude vocoder leaves). Two small models learn them in about a minute, then the batch
scorer runs over the sample uploads. The models show the pipeline; they decide nothing real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
from PIL import Image

from detector import samples
from detector.training.cache import preprocess
from detector.config import FaceConfig
from detector.datasets import manifest
from detector.training.detector_module import EpochLines, WriteBundle, quiet_lightning
from detector.frontend.faces import FaceDetector, cut_crop, square_box
from detector.training.sbi import self_blend

DISCLAIMER = ("The demo models learned from a few generated samples: they show the pipeline working "
              "end to end and must not be used for real decisions.")


def voice(seconds: float, rng: np.random.Generator, sr: int = 16_000) -> np.ndarray:
    """A voice-like sound: a wandering pitch with harmonics and a syllable-rate envelope."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
    return (0.3 * wave * envelope / np.abs(wave).max()).astype(np.float32)


def vocode(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep the magnitude spectrogram, lose the phase: the artefact of a crude vocoder."""
    x = torch.from_numpy(wave)
    window = torch.hann_window(512)
    spec = torch.stft(x, 512, 128, window=window, return_complex=True)
    phase = torch.from_numpy(rng.uniform(-np.pi, np.pi, spec.shape)).to(spec.real.dtype)
    return torch.istft(torch.polar(spec.abs(), phase), 512, 128, window=window, length=len(wave)).numpy()


def blend_face(image: np.ndarray, detector: FaceDetector, rng: np.random.Generator) -> np.ndarray:
    """The image with its faces replaced by self-blended versions of themselves."""
    out = image.copy()
    for face in detector.detect([image], crops=False)[0]:
        x1, y1, x2, y2 = (int(v) for v in square_box(face.box, 1.3))
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(image.shape[1], x2), min(image.shape[0], y2)
        region = np.ascontiguousarray(image[y1:y2, x1:x2])
        out[y1:y2, x1:x2] = self_blend(region, face.landmarks - [x1, y1], rng)
    return out


def build_uploads(folder: Path, detector: FaceDetector, rng: np.random.Generator) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    face = samples.astronaut()
    pan = list(samples.moving_crop(face, 50))
    return [
        samples.write_image(folder / "astronaut.jpg", face),
        samples.write_image(folder / "astronaut_blended.jpg", blend_face(face, detector, rng)),
        samples.write_image(folder / "coffee.png", samples.no_face()),
        samples.write_video(folder / "interview.mp4", pan, audio=voice(2.0, rng)),
        samples.write_video(folder / "interview_fake.mp4", [blend_face(f, detector, rng) for f in pan],
                            audio=vocode(voice(2.0, rng), rng)),
        samples.write_video(folder / "coffee_pan.webm", samples.moving_crop(samples.no_face(), 25)),
        samples.write_audio(folder / "voice_note.flac", voice(3.0, rng)),
        samples.write_audio(folder / "voice_note_cloned.flac", vocode(voice(3.0, rng), rng)),
    ]


def build_training_sets(root: Path, detector: FaceDetector, rng: np.random.Generator) -> tuple[Path, Path]:
    """Face crops (real and self-blended) and voice clips (real and vocoded), split in folders."""
    face = samples.astronaut()
    (found,) = detector.detect([face], crops=False)
    box = found[0].box
    crops, voices = root / "crops", root / "voices"
    for split, n in (("train", 64), ("val", 16)):
        for i in range(n):
            shift = rng.uniform(-0.08, 0.08, 2) * (box[2] - box[0])
            jitter = box + np.r_[shift, shift] * rng.uniform(0.9, 1.1)
            img = face if rng.random() < 0.5 else face[:, ::-1].copy()
            b = jitter if img is face else np.array([512 - jitter[2], jitter[1], 512 - jitter[0], jitter[3]])
            crop = cut_crop(np.ascontiguousarray(img), square_box(b, 1.3), 128)
            crop = np.clip(crop * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
            lm = None  # the crop is centred on the face: SBI's default ellipse fits it
            for label, pixels in (("real", crop), ("fake", self_blend(crop, lm, rng))):
                (crops / split / label).mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(crops / split / label / f"c{i:03d}.jpg", quality=92)
            for label, wave in (("real", voice(1.5, rng)), ("fake", vocode(voice(1.5, rng), rng))):
                (voices / split / label).mkdir(parents=True, exist_ok=True)
                samples.write_audio(voices / split / label / f"v{i:03d}.wav", wave)
    return crops, voices


def train(module: L.LightningModule, data: L.LightningDataModule, bundle: Path, root: Path, epochs: int,
          say: Callable[[str], None] = print) -> Path:
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=root / "ckpt", monitor="val/video_auc", mode="max"),
                 WriteBundle(out=str(bundle), fpr=0.05, review_fpr=0.2, demo=True), EpochLines(bundle.name, say)]
    with quiet_lightning():
        trainer = L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(root), log_every_n_steps=1,
                            callbacks=callbacks)
        trainer.fit(module, datamodule=data)
    return bundle


def run_demo(out: str | Path, say=print) -> tuple[list[Path], Path, Path]:
    """Build uploads and training data, train both models, and return (uploads, visual, audio bundles)."""
    from detector.training.audio_data import AudioDataModule
    from detector.training.audio_module import AudioDetector
    from detector.training.visual_data import CropDataModule
    from detector.training.visual_module import VisualDetector

    out = Path(out)
    L.seed_everything(0, verbose=False)
    rng = np.random.default_rng(0)
    detector = FaceDetector(FaceConfig(device="cpu"))
    uploads = build_uploads(out / "samples", detector, rng)
    say(f"built {len(uploads)} sample uploads in {out / 'samples'}")
    crops, voices = build_training_sets(out / "train_data", detector, rng)
    preprocess(manifest("folder", crops), out / "cache", crops_as_is=True)
    say("training a small face model (self-blended fakes) ...")
    visual = train(VisualDetector(backbone="resnet10t", lr=3e-3),
                   CropDataModule(str(out / "cache"), batch_size=16, num_workers=0, crop_size=96),
                   out / "bundles" / "visual", out / "runs" / "visual", epochs=12, say=say)
    say("training a small voice model (vocoded fakes) ...")
    audio = train(AudioDetector(family="lcnn", model={"width": 8}, lr=3e-3),
                  AudioDataModule("folder", str(voices), window=16_000, batch_size=16, num_workers=0),
                  out / "bundles" / "audio", out / "runs" / "audio", epochs=12, say=say)
    return uploads, visual, audio
