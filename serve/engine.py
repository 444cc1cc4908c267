"""The scoring engine: claims jobs from the store, reads each upload with `scan` in worker processes
under the job timeout, and hands what was read to the Scorer, whose batches mix the face crops and
voice windows of every upload in flight.

One engine per server process. Jobs are claimed with a lease that the engine renews while it
works; a server killed mid-job leaves leases that run out, and any engine claims those jobs again.
A Verdict is stored only by the owner of a live claim, so every upload is scored exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from detector.frontend.scan import Scan, Scanner, probe_only
from detector.scoring.scorer import ErrorRecord, Scorer, Verdict
from serve import metrics
from serve.config import ServeConfig
from serve.files import FileStore
from serve.store import Store

log = logging.getLogger("serve.engine")
THUMBNAIL_SIDE = 480  # evidence frames, long side in pixels


class Engine:
    def __init__(self, cfg: ServeConfig, store: Store, files: FileStore):
        self.cfg, self.store, self.files = cfg, store, files
        e = cfg.engine
        self.scorer = Scorer(cfg.visual, cfg.audio, e.device, cfg.sampling, cfg.limits, batch_size=e.max_batch_size,
                             fusion=cfg.fusion, provenance=cfg.provenance, max_wait_ms=e.max_wait_ms)
        for warning in self.scorer.warnings:
            log.warning(warning)
        for name, batches in (("visual", self.scorer.crops), ("audio", self.scorer.windows)):
            if batches:
                batches.on_batch = metrics.BATCH_SIZE.labels(name).observe
        faces = self.scorer.settings.faces  # workers run on the CPU; the models keep the accelerator
        settings = self.scorer.settings.model_copy(update={
            "thumbnail_side": THUMBNAIL_SIDE, "faces": faces and faces.model_copy(update={"device": "cpu"})})
        self.scanner = Scanner(settings, e.workers, e.job_timeout_s)
        # the API's check of an upload's header: in a worker too, so that no upload can hang or crash the server
        self.admission = Scanner(settings, 2, e.admission_timeout_s, fn=probe_only)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.in_flight: dict[str, dict] = {}  # upload id -> job row
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._hand = ThreadPoolExecutor(2, thread_name_prefix="hand")  # off the scanner's result thread
        self._thread = threading.Thread(target=self._claim_loop, daemon=True, name="claim")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.scanner.close()
        self.admission.close()
        self._hand.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """A job was queued: look for work now rather than at the next poll."""
        self._wake.set()

    def wait_for(self, upload_id: str, timeout: float) -> None:
        """Block until this upload leaves the queue or `timeout` passes (for `?wait=`)."""
        end = time.monotonic() + timeout
        with self._done:
            while (left := end - time.monotonic()) > 0:
                up = self.store.uploads.get(upload_id)
                if up is None or up["status"] in ("scored", "failed"):
                    return
                self._done.wait(min(left, 0.5))

    def _claim_loop(self) -> None:
        e = self.cfg.engine
        renewed = 0.0
        while not self._stop.is_set():
            try:
                free = e.max_in_flight - len(self.in_flight)
                jobs = self.store.uploads.claim(self.owner, free, e.job_lease_s) if free > 0 else []
                for job in jobs:
                    self._start(job)
                if time.monotonic() - renewed > e.job_lease_s / 3:
                    self.store.uploads.renew(self.owner, list(self.in_flight), e.job_lease_s)
                    for uid in self.store.uploads.fail_exhausted(e.max_attempts):
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

    def _start(self, job: dict) -> None:
        with self._lock:
            if job["id"] in self.in_flight:
                return
            self.in_flight[job["id"]] = job
        job["t0"] = time.perf_counter()
        self.scanner.submit(self.files.path(job["sha256"]),  # stopping: its lease runs out, another engine takes it
                            lambda scan: self._stop.is_set() or self._hand.submit(self._scanned, job, scan))

    def _scanned(self, job: dict, scan: Scan) -> None:
        if scan.error and scan.error["reason"] == "worker_crash":
            try:
                self._worker_died(job)
            except Exception:
                log.exception("releasing upload %s", job["id"])
            return
        metrics.STAGE.labels("scan").observe(time.perf_counter() - job["t0"])
        self.scorer.submit(scan, lambda record: self._record(job, scan, record))

    def _worker_died(self, job: dict) -> None:
        """Retry the job elsewhere, up to max_attempts; then it fails with that reason."""
        log.warning("a worker died while scanning upload %s (attempt %d)", job["id"], job["attempts"])
        with self._lock:
            self.in_flight.pop(job["id"], None)
        if job["attempts"] >= self.cfg.engine.max_attempts:
            self.store.uploads.finish(job["id"], self.owner, None, {
                "type": "WorkerCrash", "reason": "worker_crash", "message": "decoding this upload stopped its worker"},
                self.cfg.review.queue_decisions)
            metrics.ERRORS.labels("worker_crash").inc()
        else:
            self.store.uploads.release(job["id"], self.owner)
        self._notify()

    def _record(self, job: dict, scan: Scan, record: Verdict | ErrorRecord) -> None:
        """Store the upload's result (on the batches' hooks thread); the job leaves this engine whatever happens."""
        try:
            self._store(job, scan, record)
        finally:
            with self._lock:
                self.in_flight.pop(job["id"], None)  # unrenewed, its lease runs out if the result was not stored
            self._notify()
            self._wake.set()

    def _store(self, job: dict, scan: Scan, record: Verdict | ErrorRecord) -> None:
        metrics.STAGE.labels("total").observe(time.perf_counter() - job["t0"])
        if isinstance(record, Verdict):
            verdict = record.model_dump(mode="json", exclude={"path"})
            self._keep_evidence(job["id"], scan, record)
            stored = self.store.uploads.finish(job["id"], self.owner, verdict, None, self.cfg.review.queue_decisions)
            metrics.DECISIONS.labels(record.decision).inc()
        else:  # messages name the upload, never where its bytes are stored
            message = re.sub(rf"[^\s'\"]*{job['sha256']}", f"upload {job['id']}", record.error.get("message", ""))
            stored = self.store.uploads.finish(job["id"], self.owner, None, record.error | {"message": message},
                                           self.cfg.review.queue_decisions)
            metrics.ERRORS.labels(record.error.get("reason", "error")).inc()
        if not stored:
            log.warning("upload %s was taken over by another engine; its result here is dropped", job["id"])

    def _notify(self) -> None:
        with self._done:
            self._done.notify_all()

    def _keep_evidence(self, upload_id: str, scan: Scan, verdict: Verdict) -> None:
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
        thumbs = scan.thumbnails
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
