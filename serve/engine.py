"""The scoring engine: claims jobs from the store, decodes and finds faces in worker processes,
and batches face crops and voice windows of every upload in flight into shared model calls.

One engine per server process. Jobs are claimed with a lease that the engine renews while it
works; a server killed mid-job leaves leases that run out, and any engine claims those jobs again.
A Verdict is stored only by the owner of a live claim, so every upload is scored exactly once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import wait

import cv2
import numpy as np
from PIL import Image

from detector.config import FaceConfig, MediaLimits, SamplingConfig
from detector.faces import Scan
from detector.scoring import ErrorRecord, Scorer, Verdict
from serve import metrics
from serve.config import ServeConfig
from serve.files import FileStore
from serve.store import Store

log = logging.getLogger("serve.engine")
_worker: dict = {}
THUMBNAIL_SIDE = 480  # evidence frames, long side in pixels


def _init_worker(faces: FaceConfig | None, sampling: SamplingConfig, limits: MediaLimits) -> None:
    import torch

    from detector.faces import FaceDetector

    torch.set_num_threads(1)  # the workers share the machine with each other and the models
    threading.Thread(target=_exit_with_server, daemon=True, name="exit-with-server").start()
    _worker.update(detector=FaceDetector(faces) if faces else None, sampling=sampling, limits=limits)


def _exit_with_server() -> None:
    """In a worker: end as soon as the server process is gone, however it ended (kill -9 included)."""
    wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def _scan(path: str) -> tuple[Scan, dict[int, bytes]]:
    """In a worker: probe, decode the sampled frames, find and track faces, cut crops; with a small
    JPEG of every frame that has a face (evidence for reviewers)."""
    from detector.faces import link_tracks
    from detector.media import MediaError, iter_frames, probe

    scan, detector, thumbs = Scan(path), _worker["detector"], {}

    def keep_thumbnails(frames):
        for frame in frames:
            thumbs[frame.index] = _thumbnail(frame.image)
            yield frame

    try:
        scan.info = probe(path, _worker["limits"])
        if detector is not None and scan.info.kind != "audio":
            frames = iter_frames(path, _worker["sampling"], _worker["limits"], scan.info)
            scan.frames = detector.scan(keep_thumbnails(frames))
            scan.tracks = link_tracks(scan.frames, detector.cfg)
    except MediaError as e:
        scan.error = e
    with_faces = {f.index for f in scan.frames if f.faces}
    return scan, {i: jpeg for i, jpeg in thumbs.items() if i in with_faces}


def _thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """(H, W, 3) RGB -> JPEG bytes, the long side at most `side` pixels."""
    s = min(1.0, side / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image
    return cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


class Engine:
    def __init__(self, cfg: ServeConfig, store: Store, files: FileStore):
        self.cfg, self.store, self.files = cfg, store, files
        e = cfg.engine
        self.scorer = Scorer(cfg.visual, cfg.audio, e.device, cfg.sampling, cfg.limits, batch_size=e.max_batch_size,
                             fusion=cfg.fusion, provenance=cfg.provenance)
        for warning in self.scorer.warnings:
            log.warning(warning)
        for name, batches in (("visual", self.scorer.crops), ("audio", self.scorer.windows)):
            if batches:
                batches.on_batch = metrics.BATCH_SIZE.labels(name).observe
                batches.eager = False  # only the inference loop runs the models (below)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.in_flight: dict[str, dict] = {}  # upload id -> job row
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._pool = self._new_pool()
        self._hand = ThreadPoolExecutor(2, thread_name_prefix="submit")  # voice decoding, handing inputs over
        self._threads = [threading.Thread(target=f, daemon=True, name=f.__name__)
                         for f in (self._claim_loop, self._batch_loop)]

    def _new_pool(self) -> ProcessPoolExecutor:
        faces = self.scorer.detector.cfg if self.scorer.detector else None
        if faces is not None:  # workers run on the CPU; the models keep the accelerator
            faces = faces.model_copy(update={"device": "cpu"})
        return ProcessPoolExecutor(self.cfg.engine.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=(faces, self.cfg.sampling, self.cfg.limits))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._hand.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """A job was queued: look for work now rather than at the next poll."""
        self._wake.set()

    def wait_for(self, upload_id: str, timeout: float) -> None:
        """Block until this upload leaves the queue or `timeout` passes (for `?wait=`)."""
        end = time.monotonic() + timeout
        with self._done:
            while (left := end - time.monotonic()) > 0:
                up = self.store.upload(upload_id)
                if up is None or up["status"] in ("scored", "failed"):
                    return
                self._done.wait(min(left, 0.5))

    def _claim_loop(self) -> None:
        e = self.cfg.engine
        renewed = 0.0
        while not self._stop.is_set():
            try:
                free = e.max_in_flight - len(self.in_flight)
                jobs = self.store.claim_jobs(self.owner, free, e.job_lease_s) if free > 0 else []
                for job in jobs:
                    self._start(job)
                self._reap()
                if time.monotonic() - renewed > e.job_lease_s / 3:
                    self.store.renew_jobs(self.owner, list(self.in_flight), e.job_lease_s)
                    for uid in self.store.fail_exhausted(e.max_attempts):
                        metrics.ERRORS.labels("worker_crash").inc()
                        log.warning("upload %s failed: it stopped its worker %d times", uid, e.max_attempts)
                    renewed = time.monotonic()
                metrics.IN_FLIGHT.set(len(self.in_flight))
                if not jobs:
                    self._wake.wait(e.poll_s)
                    self._wake.clear()
            except Exception:  # the database went away for a moment: keep trying
                log.exception("claim loop")
                self._stop.wait(1.0)

    def _reap(self) -> None:
        """Jobs scanning for longer than job_timeout_s: stop the workers (a new pool takes over)."""
        limit = self.cfg.engine.job_timeout_s
        late = [j for j in list(self.in_flight.values()) if j.get("scanning") and time.perf_counter() - j["t0"] > limit]
        if not late:
            return
        for job in late:
            job["timed_out"] = True
            log.warning("upload %s still scanning after %.0f s: stopping the workers", job["id"], limit)
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
        for proc in list((getattr(old, "_processes", None) or {}).values()):
            proc.kill()  # its futures then fail with BrokenProcessPool
        old.shutdown(wait=False)

    def _batch_loop(self) -> None:
        """The inference loop, the only thread that runs the models: full batches at once, partly
        filled ones once their oldest input waited max_wait_ms."""
        wait = self.cfg.engine.max_wait_ms / 1000
        while not self._stop.is_set():
            for batches in filter(None, (self.scorer.crops, self.scorer.windows)):
                if batches.ready(wait):
                    try:
                        batches.flush()
                    except Exception:
                        log.exception("model batch")
            time.sleep(max(wait / 4, 0.001))

    def _start(self, job: dict) -> None:
        with self._lock:
            if job["id"] in self.in_flight:
                return
            self.in_flight[job["id"]] = job
        job["t0"], job["scanning"] = time.perf_counter(), True
        path = str(self.files.path(job["sha256"]))
        try:
            future = self._pool.submit(_scan, path)
        except BrokenProcessPool:
            self._pool = self._new_pool()
            future = self._pool.submit(_scan, path)
        future.add_done_callback(lambda f: self._scanned(job, f))

    def _scanned(self, job: dict, future: Future) -> None:
        job["scanning"] = False
        try:
            scan, thumbs = future.result()
        except (BrokenProcessPool, CancelledError) as e:
            if job.get("timed_out"):
                self._fail(job, "timeout", TimeoutError(f"decoding took over {self.cfg.engine.job_timeout_s:g} s"))
            else:  # its worker died (hostile input, out of memory, or another job's timeout stopped it)
                self._worker_died(job, e)
            return
        except Exception as e:  # not a media problem (those come back inside the Scan)
            log.exception("scan of %s", job["id"])
            self._fail(job, "internal", e)
            return
        metrics.STAGE.labels("scan").observe(time.perf_counter() - job["t0"])
        self._hand.submit(self._submit, job, scan, thumbs)

    def _worker_died(self, job: dict, e: BaseException) -> None:
        """Retry the job elsewhere, up to max_attempts; then it fails with that reason."""
        log.warning("a worker died while scanning upload %s (attempt %d): %r", job["id"], job["attempts"], e)
        with self._lock:
            self.in_flight.pop(job["id"], None)
            if not self._stop.is_set() and getattr(self._pool, "_broken", False):
                self._pool = self._new_pool()
        if job["attempts"] >= self.cfg.engine.max_attempts:
            self.store.finish_job(job["id"], self.owner, None, {
                "type": "WorkerCrash", "reason": "worker_crash", "message": "decoding this upload stopped its worker"},
                self.cfg.review.queue_decisions)
            metrics.ERRORS.labels("worker_crash").inc()
        else:
            self.store.release_job(job["id"], self.owner)
        self._notify()

    def _fail(self, job: dict, reason: str, e: BaseException) -> None:
        self._record(job, Scan(str(self.files.path(job["sha256"]))), ErrorRecord(
            id=job["sha256"], path="", error={"type": type(e).__name__, "reason": reason, "message": str(e)}))

    def _submit(self, job: dict, scan: Scan, thumbs: dict[int, bytes]) -> None:
        try:
            self.scorer.submit(scan, lambda record: self._record(job, scan, record, thumbs), sha256=job["sha256"])
        except Exception as e:  # never leave a job hanging: it fails with the reason
            log.exception("scoring %s", job["id"])
            self._record(job, scan, ErrorRecord(id=job["sha256"], path=scan.path,
                                                error={"type": type(e).__name__, "reason": "internal", "message": str(e)}))

    def _record(self, job: dict, scan: Scan, record: Verdict | ErrorRecord, thumbs: dict[int, bytes] | None = None) -> None:
        metrics.STAGE.labels("total").observe(time.perf_counter() - job["t0"])
        if isinstance(record, Verdict):
            verdict = record.model_dump(mode="json", exclude={"path"})
            self._keep_evidence(job["id"], scan, record, thumbs or {})
            stored = self.store.finish_job(job["id"], self.owner, verdict, None, self.cfg.review.queue_decisions)
            metrics.DECISIONS.labels(record.decision).inc()
        else:  # messages name the upload, never where its bytes are stored
            message = re.sub(rf"[^\s'\"]*{job['sha256']}", f"upload {job['id']}", record.error.get("message", ""))
            stored = self.store.finish_job(job["id"], self.owner, None, record.error | {"message": message},
                                           self.cfg.review.queue_decisions)
            metrics.ERRORS.labels(record.error.get("reason", "error")).inc()
        if not stored:
            log.warning("upload %s was taken over by another engine; its result here is dropped", job["id"])
        with self._lock:
            self.in_flight.pop(job["id"], None)
        self._notify()
        self._wake.set()

    def _notify(self) -> None:
        with self._done:
            self._done.notify_all()

    def _keep_evidence(self, upload_id: str, scan: Scan, verdict: Verdict, thumbs: dict[int, bytes]) -> None:
        """The most suspicious face crops, spread over the upload, and the frames they came from with the
        face boxed, as JPEGs."""
        k = self.cfg.review.evidence_crops
        if not k or verdict.visual is None:
            return
        scored = {(t.track, f.t): f.score for t in verdict.visual.faces for f in t.frames}
        faces = [(scored.get((f.track, round(fr.t, 3)), 0.0), fr, f) for fr in scan.frames for f in fr.faces
                 if f.crop is not None]
        duration = scan.info.duration_s if scan.info else 0.0
        gap = min(self.cfg.review.evidence_gap_s, duration / k)
        folder = self.files.evidence(upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (score, frame, face) in enumerate(spread(faces, k, gap, key=lambda x: (x[0], x[1].t))):
            Image.fromarray(np.ascontiguousarray(face.crop)).save(folder / f"crop{i}.jpg", quality=90)
            meta = {"track": face.track, "t": round(frame.t, 3), "score": round(score, 5)}
            if frame.index in thumbs:
                small = cv2.imdecode(np.frombuffer(thumbs[frame.index], np.uint8), cv2.IMREAD_COLOR)
                s = small.shape[1] / frame.width
                x1, y1, x2, y2 = (int(round(v * s)) for v in face.box)
                cv2.rectangle(small, (x1, y1), (x2, y2), (0, 0, 255), 2)
                cv2.imwrite(str(folder / f"frame{i}.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 85])
                meta["frame"] = True
            (folder / f"crop{i}.json").write_text(json.dumps(meta))


def spread(candidates: list, k: int, gap: float, key) -> list:
    """The `k` highest-scoring candidates (`key`: (score, time)) no two within `gap` seconds, by score;
    ties go to the earlier moment."""
    chosen: list = []
    for c in sorted(candidates, key=lambda c: (-key(c)[0], key(c)[1])):
        if len(chosen) < k and all(abs(key(c)[1] - key(o)[1]) >= gap for o in chosen):
            chosen.append(c)
    return chosen
