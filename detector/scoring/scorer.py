"""One scorer for every upload: what `scan` read -> calibrated scores -> a Verdict.

The batch scorer and evaluation call `Scorer.score_many`; the server's engine runs `scan` in its
workers and hands each Scan to `Scorer.submit`, as `score_many` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import AliasChoices, BaseModel, Field

from detector.frontend.audio import aggregate
from detector.scoring.batching import Batcher
from detector.bundle import BundleMeta, Thresholds, load_bundle, resolve_bundle
from detector.config import SCORING_THRESHOLDS, FaceConfig, MediaLimits, SamplingConfig
from detector.frontend.faces import resolve_device
from detector.frontend.scan import Scan, ScanSettings, error_record, scan_many
from detector.scoring.fusion import SEVERITY, Fusion
from detector.frontend.provenance import Provenance, ProvenancePolicy
from detector.version import software, utc_now

log = logging.getLogger(__name__)

Decision = Literal["likely_fake", "review", "clear", "no_signal"]


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
    modality: str = Field(validation_alias=AliasChoices("modality", "kind"))  # visual | audio (older Verdicts: "kind")
    name: str
    version: str  # content hash of the weights
    thresholds: Thresholds  # the calibrated scores at which this model says review and likely_fake
    demo: bool = False  # trained on generated samples: never for real decisions


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
    provenance: Provenance | None = None  # the C2PA manifest's story, when the upload has one
    decided_by: Literal["models", "provenance"] = "models"
    scored_at: str = Field(default_factory=utc_now)  # ISO 8601, UTC
    software: str = Field(default_factory=software)  # which deepfake-detector scored it
    index: int | None = None  # `score_many`: the upload's position among the paths given (results come as they finish)
    settings: str | None = None  # digest of the settings that change a Verdict (Scorer.settings_id): a rerun compares it


class ErrorRecord(BaseModel):
    id: str | None
    path: str
    error: dict  # type, reason, message; `retryable: true` where trying again later may succeed
    scored_at: str = Field(default_factory=utc_now)
    software: str = Field(default_factory=software)
    index: int | None = None


def model_error(e: BaseException) -> dict:
    """A model call's exception as an upload's error; running out of device memory may pass on a later try."""
    oom = isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()
    return {"type": type(e).__name__, "reason": "model_error", "message": str(e)} | ({"retryable": True} if oom else {})


@torch.inference_mode()
def crop_logits(net: torch.nn.Module, meta: BundleMeta, crops: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Logits for (S, S, 3) uint8 crops, resized to the bundle's input size, in batches."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.stack(crops[i : i + batch_size])).to(device).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != meta.input_size:  # (B, 3, S, S)
            x = torch.nn.functional.interpolate(x, size=meta.input_size, mode="bilinear", antialias=True)
        out.append(net(x.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def settings_digest(scan: ScanSettings, fusion: Fusion, runtime: str, track_aggregation: str, topk: int) -> str:
    """First 16 hex digits of sha256 over every setting that can change a Verdict: what is read, how the
    tracks and modalities are combined, which runtime; not where or how fast (device, batch size, workers),
    nor the limits (a Verdict means the upload was within them) or the thumbnails a server keeps."""
    faces = scan.faces and scan.faces.model_dump(exclude={"device", "batch_size"})
    read = scan.model_dump(exclude={"faces", "thumbnail_side", "limits"}) | {"faces": faces}
    state = {"scan": read, "fusion": fusion.model_dump(), "runtime": runtime, "tracks": [track_aggregation, topk]}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Pending:
    """One upload between its scan and its Verdict: waits for its crops' and windows' scores."""

    def __init__(self, scan: Scan, done: Callable[[Verdict | ErrorRecord], None]):
        self.scan, self.done = scan, done
        self.faces = [(fr, f) for fr in scan.frames for f in fr.faces]
        self.probs = np.zeros(len(self.faces))
        self.scores: list[float | None] = [None] * len(scan.segments or ())  # per audio window
        self.error: dict | None = scan.error
        self.waiting = 1  # the submission itself, until every input is handed over
        self.submitted = time.perf_counter()
        self.lock = threading.Lock()


class Scorer:
    """Built from a visual and/or an audio bundle; a missing one means that modality is not scored.

    Uploads are read by `scan` (detector/frontend/scan.py); the Scorer batches what it read, face crops and
    voice windows of every upload in flight, through the networks (detector/scoring/batching.py): `batch_size`
    inputs, by default 64 on CUDA and 8 on CPU where bigger batches are slower (bench/batch_size.py),
    or fewer once the oldest waited `max_wait_ms`.
    """

    def __init__(self, visual: str | Path | None = "starter", audio: str | Path | None = "starter", device: str = "auto",
                 sampling: SamplingConfig | None = None, limits: MediaLimits = MediaLimits(),
                 track_aggregation: Literal["mean", "topk"] = "mean", topk: int = 3, batch_size: int | None = None,
                 runtime: Literal["torch", "onnx"] = "torch", fusion: Fusion = Fusion(),
                 provenance: ProvenancePolicy = ProvenancePolicy(), max_wait_ms: float = 20,
                 detect_thresholds: tuple[float, float, float] | None = SCORING_THRESHOLDS):
        """`visual`/`audio`: a bundle folder, "starter" (the models shipped in the package) or None (that
        modality is not scored); `runtime="onnx"` scores with the bundles' exported model.onnx; `sampling`
        None samples videos as the visual bundle's training did (32 frames where it does not say);
        `detect_thresholds` the face detector's at scoring where looser than those the bundle's crops were
        cut with (each stage's lower one), None: the bundle's."""
        visual, audio = resolve_bundle(visual, "visual"), resolve_bundle(audio, "audio")
        if visual is None and audio is None:
            raise ValueError("a scorer needs a visual or an audio bundle (or both)")
        dev = resolve_device(device)
        self.visual = load_bundle(visual, dev, runtime) if visual else None
        self.audio = load_bundle(audio, dev, runtime) if audio else None
        sampling = sampling or (self.visual and self.visual[1].sampling) or SamplingConfig()
        faces = None
        if visual:
            faces = self.visual[1].faces.model_copy(update={"device": device})
            if detect_thresholds:  # never stricter than the bundle's; a face once found kept at no more than a new one needs
                loose = tuple(min(a, b) for a, b in zip(detect_thresholds, faces.thresholds))
                faces = FaceConfig.model_validate(faces.model_dump() | {"thresholds": loose,
                                                                        "track_keep": min(faces.track_keep, loose[2])})
        self.settings = ScanSettings(
            limits=limits, sampling=sampling, provenance=provenance, faces=faces,
            audio=self.audio[1].audio if audio else None)
        self.fusion, self.provenance = fusion, provenance
        self.track_aggregation, self.topk = track_aggregation, topk
        self.models = [ModelInfo(modality=m.modality, name=m.name or m.model.get("backbone", m.family), version=m.version,
                                 thresholds=m.thresholds, demo=m.demo)
                       for _, m in filter(None, (self.visual, self.audio))]
        self.warnings = [f"the {m.modality} model {m.name} ({m.version}) is a demo model, trained on generated samples: "
                         "its scores mean nothing for real uploads" for m in self.models if m.demo]
        self.warnings += [f"the {m.modality} model {m.name} ({m.version}) is {b[1].caution}"
                          for m, b in zip(self.models, filter(None, (self.visual, self.audio))) if b[1].caution]
        self.settings_id = settings_digest(self.settings, fusion, runtime, track_aggregation, topk)
        batch_size = batch_size or (64 if dev.type == "cuda" else 8)
        self.crops = Batcher(self._crop_probs, batch_size, max_wait_ms / 1000) if visual else None
        self.windows = Batcher(self._window_probs, batch_size, max_wait_ms / 1000) if audio else None

    def close(self) -> None:
        """Answer what waits in the batches and stop their threads; `with Scorer() as scorer:` does this."""
        for batches in filter(None, (self.crops, self.windows)):
            batches.close()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def score(self, upload: str | Path | bytes | np.ndarray) -> Verdict | ErrorRecord:
        """One upload: a path, the file's bytes, or an (H, W, 3) uint8 RGB image, read in this process.
        The record's `path` is `<bytes>` or `<array>` for uploads that came without one."""
        if isinstance(upload, (str, Path)):
            (record,) = self.score_many([upload], workers=0)
            return record
        if isinstance(upload, np.ndarray) and (upload.dtype != np.uint8 or upload.ndim != 3 or upload.shape[2] != 3):
            raise ValueError(f"an image array must be (H, W, 3) uint8 RGB, not {upload.shape} {upload.dtype}")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload"  # media are recognised by content, not by name
            if isinstance(upload, np.ndarray):
                Image.fromarray(upload).save(path, format="PNG")
            else:
                path.write_bytes(upload)
            (record,) = self.score_many([path], workers=0)
        return record.model_copy(update={"path": "<array>" if isinstance(upload, np.ndarray) else "<bytes>"})

    def score_many(self, paths: Iterable[str | Path], workers: int = 2,
                   timeout_s: float | None = 600) -> Iterator[Verdict | ErrorRecord]:
        """Verdicts as uploads finish (not in input order): `workers` processes run `scan` (0: this process,
        with no time limit), at most `timeout_s` per upload; what they read shares the models' batches."""
        return self.score_scans(scan_many(paths, self.settings, workers, timeout_s), ahead=2 * max(1, workers))

    def score_scans(self, scans: Iterable[Scan], ahead: int = 2) -> Iterator[Verdict | ErrorRecord]:
        """A record per Scan as each is scored, with at most `ahead` more scans waiting for the models."""
        records: queue.SimpleQueue = queue.SimpleQueue()
        waiting = 0
        for s in scans:
            self.submit(s, records.put)
            waiting += 1
            while waiting and (waiting > ahead or not records.empty()):
                if waiting > ahead:
                    self.flush()
                yield records.get()
                waiting -= 1
        self.flush()
        for _ in range(waiting):
            yield records.get()

    def flush(self) -> None:
        """Score what waits in partly filled batches now."""
        for batches in filter(None, (self.crops, self.windows)):
            batches.flush()

    def submit(self, scan: Scan, done: Callable[[Verdict | ErrorRecord], None]) -> None:
        """Hand what `scan` read to the models' batches; `done` gets its Verdict, or its error record,
        exactly once, on the batches' hooks thread (or on this one when nothing needs a model)."""
        job = _Pending(scan, done)
        try:
            if job.error is None and self.visual and scan.info.media_type != "audio":
                for i, (_, face) in enumerate(job.faces):
                    self._add(job, self.crops, face.crop, lambda p, i=i: job.probs.__setitem__(i, p))
            if job.error is None and self.audio and scan.segments is not None:
                for i, x in enumerate(scan.windows):
                    if x is not None:
                        self._add(job, self.windows, x, lambda p, i=i: job.scores.__setitem__(i, p))
        except Exception as e:  # what was handed over still answers; then the upload fails
            job.error = error_record(e)
        self._settle(job)

    def _add(self, job: _Pending, batches: Batcher, x: np.ndarray, put: Callable[[float], None]) -> None:
        with job.lock:
            job.waiting += 1

        def done(p: float | BaseException) -> None:
            if isinstance(p, BaseException):
                job.error = job.error or model_error(p)
            else:
                put(p)
            self._settle(job)

        batches.add(x, done)

    def _settle(self, job: _Pending) -> None:
        with job.lock:
            job.waiting -= 1
            if job.waiting:
                return
        try:
            record = self._verdict(job)
        except Exception as e:  # noqa: BLE001 - a bug in assembling one Verdict fails that upload alone, and answers it
            log.exception("assembling the Verdict of %s", job.scan.path)
            record = ErrorRecord(id=job.scan.sha256, path=job.scan.path, error=error_record(e))
        record.index = job.scan.index
        job.done(record)

    @torch.inference_mode()
    def _crop_probs(self, crops: list[np.ndarray]) -> np.ndarray:
        net, meta = self.visual
        return meta.calibration(crop_logits(net, meta, crops, len(crops)))

    @torch.inference_mode()
    def _window_probs(self, windows: list[np.ndarray]) -> np.ndarray:
        net, meta = self.audio
        x = torch.from_numpy(np.stack(windows)).to(next(net.parameters()).device)
        return meta.calibration(net(x).float().cpu().numpy())

    def _verdict(self, job: _Pending) -> Verdict | ErrorRecord:
        scan = job.scan
        if job.error is not None:
            return ErrorRecord(id=scan.sha256, path=scan.path, error=job.error)
        broken = [m for m, scores in (("visual", job.probs), ("audio", [p for p in job.scores if p is not None]))
                  if not np.isfinite(np.asarray(scores, np.float64)).all()]
        if broken:  # NaN >= threshold is False: a NaN would come out `clear`
            return ErrorRecord(id=scan.sha256, path=scan.path, error={
                "type": "ModelError", "reason": "model_error", "message": f"the {broken[0]} model gave a non-finite score"})
        visual = self._visual(job) if self.visual and scan.info.media_type != "audio" else None
        audio = None
        if self.audio and scan.segments is not None:
            voiced = [p for p in job.scores if p is not None]
            score = aggregate(voiced, self.audio[1].audio)
            audio = AudioResult(score=None if score is None else round(score, 5), segments=[
                Segment(**(replace(seg, score=p).to_dict())) for seg, p in zip(scan.segments, job.scores)])
        scores = {"visual": visual and visual.score, "audio": audio and audio.score}
        own = {m: b[1].thresholds for m, b in (("visual", self.visual), ("audio", self.audio)) if b}
        score, decision = self.fusion.fuse(scores, own)
        routed = self.provenance.route(scan.provenance)
        by = "models"
        if routed and SEVERITY[routed] > SEVERITY[decision]:
            decision, by = routed, "provenance"
        models_ms = round((time.perf_counter() - job.submitted) * 1000, 1)
        timings = {"scan": scan.took_ms, "models": models_ms, "total": round(scan.took_ms + models_ms, 1)}
        return Verdict(id=scan.sha256, path=scan.path, media_type=scan.info.media_type,
                       score=None if score is None else round(score, 5), decision=decision, visual=visual, audio=audio,
                       models=self.models, timings_ms=timings, provenance=scan.provenance, decided_by=by,
                       settings=self.settings_id)

    def _visual(self, job: _Pending) -> VisualResult:
        tracks: dict[int, list[FrameScore]] = {}
        for (fr, f), p in zip(job.faces, job.probs):
            tracks.setdefault(f.track, []).append(FrameScore(t=round(fr.t, 3), box=[round(float(v), 1) for v in f.box],
                                                             score=round(float(p), 5)))
        out = []
        for track, frames in sorted(tracks.items()):
            s = np.sort([x.score for x in frames])[::-1]
            score = s[: self.topk].mean() if self.track_aggregation == "topk" else s.mean()
            out.append(FaceTrack(track=track, score=round(float(score), 5), frames=frames))
        # the upload is as suspicious as its most suspicious person
        return VisualResult(score=max((t.score for t in out), default=None), frames_scored=len(job.scan.frames),
                            faces=out)
