"""One scorer for every upload: face tracks and voice windows -> calibrated scores -> a Verdict.

The batch scorer, the server and evaluation all go through `Scorer.score_many`.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Iterable, Iterator, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from detector.audio_scoring import score_chunks
from detector.bundle import BundleMeta, load_bundle
from detector.config import MediaLimits, SamplingConfig
from detector.faces import FaceDetector, Scan, resolve_device, scan_files
from detector.media import MediaError, iter_audio, probe

Decision = Literal["likely_fake", "review", "clear", "no_signal"]
_SEVERITY = {"no_signal": 0, "clear": 1, "review": 2, "likely_fake": 3}


class FrameScore(BaseModel):
    t: float
    box: list[float]
    score: float


class FaceTrack(BaseModel):
    track: int
    score: float
    frames: list[FrameScore]


class VisualResult(BaseModel):
    score: float | None  # None: no face to judge
    frames_scored: int
    faces: list[FaceTrack] = Field(default_factory=list)


class Segment(BaseModel):
    start: float
    end: float
    score: float | None  # None: not speech


class AudioResult(BaseModel):
    score: float | None  # None: no speech to judge
    segments: list[Segment] = Field(default_factory=list)


class ModelInfo(BaseModel):
    kind: str
    name: str
    version: str  # content hash of the weights


class Verdict(BaseModel):
    id: str  # sha256 of the upload's bytes
    path: str
    media_type: str
    score: float | None
    decision: Decision
    visual: VisualResult | None = None  # None: no visual model, or nothing visual in the upload
    audio: AudioResult | None = None
    models: list[ModelInfo]
    timings_ms: dict[str, float]


class ErrorRecord(BaseModel):
    id: str | None
    path: str
    error: dict  # type, reason, message


def file_id(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.inference_mode()
def crop_logits(net: torch.nn.Module, meta: BundleMeta, crops: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Logits for (S, S, 3) uint8 crops, resized to the bundle's input size, in batches."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.stack(crops[i : i + batch_size])).to(device).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != meta.input_size:  # (B, 3, S, S)
            x = torch.nn.functional.interpolate(x, size=meta.input_size, mode="bilinear", antialias=True)
        out.append(net(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _decide(score: float | None, meta: BundleMeta) -> Decision:
    if score is None:
        return "no_signal"
    t = meta.thresholds
    return "likely_fake" if score >= t.likely_fake else "review" if score >= t.review else "clear"


class Scorer:
    """Built from a visual and/or an audio bundle; a missing one means that modality is not scored."""

    def __init__(self, visual: str | Path | None = None, audio: str | Path | None = None, device: str = "auto",
                 sampling: SamplingConfig = SamplingConfig(), limits: MediaLimits = MediaLimits(),
                 track_aggregation: Literal["mean", "topk"] = "mean", topk: int = 3, batch_size: int = 64,
                 runtime: Literal["torch", "onnx"] = "torch"):
        """`runtime="onnx"` scores with the bundles' exported model.onnx through onnxruntime."""
        if visual is None and audio is None:
            raise ValueError("a scorer needs a visual or an audio bundle (or both)")
        dev = resolve_device(device)
        self.visual = load_bundle(visual, dev, runtime) if visual else None
        self.audio = load_bundle(audio, dev, runtime) if audio else None
        self.detector = FaceDetector(self.visual[1].faces.model_copy(update={"device": device})) if visual else None
        self.sampling, self.limits = sampling, limits
        self.track_aggregation, self.topk, self.batch_size = track_aggregation, topk, batch_size
        self.models = [ModelInfo(kind=m.kind, name=m.model.get("backbone", m.family), version=m.version)
                       for _, m in filter(None, (self.visual, self.audio))]

    def score_many(self, paths: Iterable[str | Path], workers: int = 2) -> Iterator[Verdict | ErrorRecord]:
        """Verdicts as uploads finish; frames of many uploads share the face detector's batches."""
        paths = [str(p) for p in paths]
        if self.detector is None:  # audio alone: no frames to decode
            for p in paths:
                scan = Scan(p)
                try:
                    scan.info = probe(p, self.limits)
                except MediaError as e:
                    scan.error = e
                yield self._finish(scan, started=time.perf_counter())
            return
        for scan in scan_files(paths, self.detector, self.sampling, self.limits, decoders=workers):
            yield self._finish(scan, started=time.perf_counter())

    def _finish(self, scan: Scan, started: float) -> Verdict | ErrorRecord:
        try:
            uid = file_id(scan.path)
        except OSError:
            uid = None
        if scan.error is not None:
            return ErrorRecord(id=uid, path=scan.path, error={"type": type(scan.error).__name__,
                               "reason": scan.error.reason, "message": str(scan.error)})
        timings: dict[str, float] = {}
        info = scan.info
        visual = self._visual(scan) if self.visual and info.kind != "audio" else None
        timings["visual"] = round((time.perf_counter() - started) * 1000, 1)
        try:
            audio = self._audio(scan.path) if self.audio and info.has_audio else None
        except MediaError as e:  # the picture was fine, the sound track is not
            return ErrorRecord(id=uid, path=scan.path, error={"type": type(e).__name__, "reason": e.reason,
                                                               "message": f"audio track: {e}"})
        timings["audio"] = round((time.perf_counter() - started) * 1000 - timings["visual"], 1)
        decisions = []
        if visual is not None:
            decisions.append((_decide(visual.score, self.visual[1]), visual.score))
        if audio is not None:
            decisions.append((_decide(audio.score, self.audio[1]), audio.score))
        decision, score = max(decisions, key=lambda d: (_SEVERITY[d[0]], d[1] or 0), default=("no_signal", None))
        return Verdict(id=uid, path=scan.path, media_type=info.kind, score=score, decision=decision,
                       visual=visual, audio=audio, models=self.models, timings_ms=timings)

    def _visual(self, scan: Scan) -> VisualResult:
        net, meta = self.visual
        faces = [(fr, f) for fr in scan.frames for f in fr.faces]
        probs = meta.calibration(crop_logits(net, meta, [f.crop for _, f in faces], self.batch_size)) if faces else []
        tracks: dict[int, list[FrameScore]] = {}
        for (fr, f), p in zip(faces, probs):
            tracks.setdefault(f.track, []).append(FrameScore(t=round(fr.t, 3), box=[round(float(v), 1) for v in f.box],
                                                             score=round(float(p), 5)))
        out = []
        for track, frames in sorted(tracks.items()):
            s = np.sort([x.score for x in frames])[::-1]
            score = s[: self.topk].mean() if self.track_aggregation == "topk" else s.mean()
            out.append(FaceTrack(track=track, score=round(float(score), 5), frames=frames))
        # the upload is as suspicious as its most suspicious person
        return VisualResult(score=max((t.score for t in out), default=None), frames_scored=len(scan.frames), faces=out)

    def _audio(self, path: str) -> AudioResult:
        net, meta = self.audio
        score, segments = score_chunks(net, meta.calibration, iter_audio(path, self.limits, sample_rate=meta.audio.sample_rate),
                                       meta.audio, self.batch_size)
        return AudioResult(score=None if score is None else round(score, 5),
                           segments=[Segment(**s.to_dict()) for s in segments])
