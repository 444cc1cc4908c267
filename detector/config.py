"""Typed settings for the front end, loaded from YAML; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A settings file that does not parse or validate; the message is one line: file, key, problem."""


def describe(error: ValidationError) -> str:
    """A pydantic error as one line: `key.path: message` per problem."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors())


def read_yaml(path: str | Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise ConfigError(f"{path}:{mark.line + 1}:{mark.column + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {' '.join(str(e).split())}") from None


def validate(model: type[M], data: dict, source: str | Path | None) -> M:
    """`model` from `data`, or ConfigError naming `source` (the file, or the built-in defaults) and the keys."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source or 'built-in settings'}: {describe(e)}") from None


class FrozenSettings(BaseModel):
    """Settings that refuse unknown keys and never change (hashable: they key caches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaLimits(FrozenSettings):
    """Checked from headers before heavy decoding; a breach raises MediaTooLarge."""

    max_bytes: int = Field(2 * 1024**3, gt=0)
    max_frame_pixels: int = Field(4096 * 2304, gt=0)  # per video frame: up to 4K UHD
    max_image_pixels: int = Field(64_000_000, gt=0)  # still images, against decompression bombs
    max_duration_s: float = Field(3 * 3600, gt=0)
    max_frames: int = Field(2_000_000, gt=0)  # frames in a video stream, as its header says


class SamplingConfig(FrozenSettings):
    """Which video frames to read: `frames` evenly spaced over the duration, or `fps` per second."""

    frames: int | None = Field(32, gt=0)
    fps: float | None = Field(None, gt=0)
    max_sampled: int = Field(512, gt=0)  # ceiling when sampling by fps

    @model_validator(mode="after")
    def _one_mode(self) -> "SamplingConfig":
        if (self.frames is None) == (self.fps is None):
            raise ValueError("set exactly one of sampling.frames and sampling.fps")
        return self


# MTCNN stage thresholds when scoring: looser than the crops a model was trained on were cut with, as
# the DFDC winner detected; a missed face leaves an upload unscored (bench/face_thresholds.py: on 384
# DFDC face images 10 missed instead of 26, photo face counts 0.966 instead of 0.931, same precision)
SCORING_THRESHOLDS = (0.7, 0.8, 0.8)


class FaceConfig(FrozenSettings):
    device: str = "auto"
    # detect on a downscaled copy (DFDC winner: half size): scale, and a cap on its long side
    detect_scale: float = Field(1.0, gt=0, le=1)
    detect_max_side: int | None = Field(960, gt=0)
    min_face_px: int = Field(40, gt=0)  # in full-resolution pixels
    # MTCNN stage thresholds (DFDC winner's); the last is the least probability of a face found anew
    thresholds: tuple[float, float, float] = (0.85, 0.95, 0.95)
    # frames per detector call; None: 1 on CPU (measured fastest, bench/faces.py), 32 on CUDA
    batch_size: int | None = Field(None, gt=0)
    # detect, then track (frames scanned one at a time): the full cascade on every `track_every`-th
    # frame, where a face is lost or the scene cuts; between them R-Net and O-Net on the boxes carried
    track_every: int = Field(16, ge=1)  # 1: the full cascade on every frame
    track_face_px: float = Field(96, gt=0)  # tracking: the smallest face is this big in the copy detected on
    track_min_face: float = Field(0.5, gt=0)  # every k-th frame: faces down to this x the smallest tracked one
    track_pad: float = Field(1.2, ge=1)  # carried box refined as it is and enlarged by this ...
    track_shift: float = Field(0.1, ge=0)  # ... and moved by this x its side left, right, up, down
    track_rnet: bool = True  # R-Net before O-Net on the carried boxes ...
    track_merge: float = Field(0.3, gt=0, le=1)  # ... its boxes merged (NMS) at this IoU: fewer for O-Net
    track_keep: float = Field(0.9, ge=0, le=1)  # a followed face stays while O-Net gives it this (a new one: thresholds[2])
    scene_change: float = Field(40.0, gt=0)  # mean absolute difference (0-255) of 32 px thumbnails
    crop_size: int = Field(224, gt=0)  # model input size
    crop_scale: float = Field(1.3, ge=1)  # square side = scale x longer box side (DeepfakeBench)
    crop_margin: float | None = Field(None, ge=0)  # alternative: fraction of the box added per side
    track_iou: float = Field(0.3, ge=0, le=1)  # link faces whose boxes overlap at least this much
    track_centre: float = Field(0.5, gt=0)  # ... or whose centres are this many box sides apart
    track_max_gap: int = Field(4, ge=0)  # sampled frames a track may miss and still continue

    @model_validator(mode="after")
    def _keep_no_stricter_than_finding(self) -> "FaceConfig":
        if self.track_keep > self.thresholds[2]:
            raise ValueError("faces.track_keep must not exceed faces.thresholds[2]: a face once found is kept "
                             "at that probability or less")
        return self

    @property
    def scale(self) -> float:
        """Square crop side relative to the box's longer side."""
        return self.crop_scale if self.crop_margin is None else 1 + 2 * self.crop_margin


class AudioConfig(FrozenSettings):
    """How long audio is cut into windows and the window scores become one file score."""

    sample_rate: int = 16_000
    window_s: float = Field(4.0375, gt=0)  # 64,600 samples at 16 kHz, as AASIST
    hop_s: float = Field(2.0, gt=0)
    aggregation: Literal["mean", "max", "topk"] = "mean"
    topk: int = Field(3, gt=0)
    vad_db: float = -45.0  # 20 ms frames quieter than this (dBFS) are silence
    min_voiced: float = Field(0.2, ge=0, le=1)  # windows with less voiced time are not scored as speech
    max_flatness: float = Field(0.4, gt=0, le=1)  # voiced frames flatter than this are noise, not voice

    @model_validator(mode="after")
    def _hop_within_window(self) -> "AudioConfig":
        if self.hop_s > self.window_s:
            raise ValueError("audio.hop_s must not exceed audio.window_s: every sample is scored")
        return self


class FrontEndConfig(FrozenSettings):
    limits: MediaLimits = MediaLimits()
    sampling: SamplingConfig = SamplingConfig()
    faces: FaceConfig = FaceConfig()


def load_config(path: str | Path | None, overrides: dict | None = None) -> FrontEndConfig:
    """Read a YAML config (or the defaults) and apply `section.key` overrides."""
    data = read_yaml(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    return validate(FrontEndConfig, data, path)

