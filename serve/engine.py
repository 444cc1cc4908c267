"""The scoring engine: claims jobs from the store, reads each upload with `scan` in worker processes
under the job timeout, and hands what was read to the Scorer, whose batches mix the face crops and
voice windows of every upload in flight.

One engine per server process. A job is an upload claimed with a lease that the engine renews
while it works, up to the job's deadline (`engine.job_deadline_s`): then the job fails as
`timeout`, whatever the model stage is doing. Each job settles exactly once: stored, failed, or
given back to the queue (a worker that died, a model out of memory) as an attempt. A server killed
mid-job leaves leases that run out, and any engine claims those jobs again, `max_attempts` times
at most. A Verdict is stored only by the owner of a live claim, so every upload is scored once.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from detector.scoring.fusion import decide
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
        self._register()
        self.bundles = self._live()
        self.scorer = self._scorer(self.bundles)
        self.shadow = self._shadow(self.bundles)
        self.scanner, self.admission = self._scanners(self.scorer)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.in_flight: dict[str, dict] = {}  # upload id -> job row
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}  # ?wait= callers
        self._hand = ThreadPoolExecutor(2, thread_name_prefix="hand")  # off the scanner's result thread
        self._thread = threading.Thread(target=self._claim_loop, daemon=True, name="claim")

    def _register(self) -> None:
        """The configured bundles into the registry: live where their modality has no live model yet."""
        from detector.bundle import bundle_meta, resolve_bundle

        for modality, choice in (("visual", self.cfg.visual), ("audio", self.cfg.audio)):
            if (folder := resolve_bundle(choice, modality)) is not None:
                model = self.store.models.register(bundle_meta(folder), str(choice), "server", live_if_none=True)
                if model["state"] != "live":  # the registry decides: say so where a changed config would surprise
                    log.warning("the configured %s bundle %s (%s) is a %s in the model registry, which scores with its "
                                "live model; promote it with `deepfake-detect model promote %s`", modality, choice,
                                model["version"], model["state"], model["version"])

    def _live(self) -> dict[str, str | None]:
        """The bundle of each modality the config turns on: the registry's live one; and its shadow, if any
        (keys `shadow_visual`, `shadow_audio`)."""
        live, shadow = self.store.models.by_modality(), self.store.models.by_modality("shadow")
        chosen = {"visual": self.cfg.visual, "audio": self.cfg.audio}
        return {m: live[m]["path"] if choice and m in live else choice for m, choice in chosen.items()} | {
            f"shadow_{m}": shadow[m]["path"] if choice and m in shadow else None for m, choice in chosen.items()}

    def _shadow(self, bundles: dict[str, str | None]) -> Scorer | None:
        """The shadow models' scorer (only their modalities), or None."""
        if not (bundles["shadow_visual"] or bundles["shadow_audio"]):
            return None
        e, cfg = self.cfg.engine, self.cfg
        return Scorer(bundles["shadow_visual"], bundles["shadow_audio"], e.device, cfg.sampling, cfg.limits,
                      batch_size=e.max_batch_size, max_wait_ms=e.max_wait_ms)

    def _shadowed(self, upload_id: str) -> bool:
        """Whether this upload is in the share a shadow model scores (the same answer on every server)."""
        return int(upload_id[:8], 16) < self.cfg.engine.shadow_share * 16**8

    def _shadow_record(self, upload_id: str, shadow: Scorer, record: Verdict | ErrorRecord) -> None:
        """Keep each shadow model's score of the upload and the decision its own thresholds give; nothing else."""
        if not isinstance(record, Verdict):
            log.info("shadow scoring of upload %s failed: %s", upload_id, record.error.get("message", "")[:200])
            return
        for m in shadow.models:
            result = record.visual if m.modality == "visual" else record.audio
            s = result.score if result else None
            try:
                self.store.models.record_shadow(upload_id, m.version, m.modality, s,
                                                None if s is None else decide(s, m.thresholds))
            except Exception:  # a shadow's score is never worth a job: logged, and the job goes on
                log.exception("recording the shadow score of upload %s", upload_id)

    def _scorer(self, bundles: dict[str, str | None]) -> Scorer:
        e, cfg = self.cfg.engine, self.cfg
        scorer = Scorer(bundles["visual"], bundles["audio"], e.device, cfg.sampling, cfg.limits, batch_size=e.max_batch_size,
                        fusion=cfg.fusion, provenance=cfg.provenance, max_wait_ms=e.max_wait_ms)
        for warning in scorer.warnings:
            log.warning(warning)
        for name, batches in (("visual", scorer.crops), ("audio", scorer.windows)):
            if batches:
                batches.on_batch = metrics.BATCH_SIZE.labels(name).observe
        for model in scorer.models:
            metrics.MODEL.labels(model.modality).info({"name": model.name, "version": model.version})
        return scorer

    def _scanners(self, scorer: Scorer) -> tuple[Scanner, Scanner]:
        """Workers that read uploads as `scorer`'s bundles need, and the API's check of an upload's header
        (in a worker too, so that no upload can hang or crash the server)."""
        e = self.cfg.engine
        faces = scorer.settings.faces  # workers run on the CPU; the models keep the accelerator
        settings = scorer.settings.model_copy(update={
            "thumbnail_side": THUMBNAIL_SIDE, "faces": faces and faces.model_copy(update={"device": "cpu"})})
        return Scanner(settings, e.workers, e.job_timeout_s), Scanner(settings, 2, e.admission_timeout_s, fn=probe_only)

    def _switch(self, bundles: dict[str, str | None]) -> None:
        """Score new jobs with the registry's live (and shadow) bundles; what the old scorers and readers hold
        finishes on them, and they close once every such job has passed its deadline."""
        old = []
        if any(bundles[m] != self.bundles[m] for m in ("visual", "audio")):
            scorer = self._scorer(bundles)
            if scorer.settings != self.scorer.settings:  # other crops or sound windows: readers to match
                old += [self.scanner, self.admission]
                self.scanner, self.admission = self._scanners(scorer)
            old.append(self.scorer)
            self.scorer = scorer
        if any(bundles[f"shadow_{m}"] != self.bundles[f"shadow_{m}"] for m in ("visual", "audio")):
            old += [self.shadow] if self.shadow else []
            self.shadow = self._shadow(bundles)
        self.bundles = bundles
        log.info("now scoring with %s%s", ", ".join(f"{m.modality} {m.name}@{m.version}" for m in self.scorer.models),
                 "; in the shadow: " + ", ".join(f"{m.modality} {m.name}@{m.version}" for m in self.shadow.models)
                 if self.shadow else "")
        closer = threading.Timer(self.cfg.engine.job_deadline_s, lambda: [part.close() for part in old])
        closer.daemon = True
        closer.start()

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

    async def wait(self, upload_id: str, timeout: float) -> None:
        """Return once this upload is scored or failed, or `timeout` passed (for `?wait=`): woken by this
        engine, and every few seconds reading the database (another server may have scored it)."""
        loop, end = asyncio.get_running_loop(), time.monotonic() + timeout
        future = loop.create_future()
        with self._lock:
            self._waiters.setdefault(upload_id, []).append((loop, future))
        try:
            while (left := end - time.monotonic()) > 0:
                up = await asyncio.to_thread(self.store.uploads.get, upload_id)
                if up is None or up["status"] in ("scored", "failed"):
                    return
                try:
                    await asyncio.wait_for(asyncio.shield(future), min(left, 2.0))
                    return
                except TimeoutError:
                    pass
        finally:
            with self._lock:
                waiting = self._waiters.get(upload_id, [])
                waiting[:] = [w for w in waiting if w[1] is not future]
                if not waiting:
                    self._waiters.pop(upload_id, None)

    def stalled(self) -> str | None:
        """Why this engine should take no work now (a model call that has run too long), or None."""
        limit = self.cfg.engine.model_stall_s
        for name, batches in (("visual", self.scorer.crops), ("audio", self.scorer.windows)):
            if batches and (took := batches.running_for()) > limit:
                return f"the {name} model has been running one batch for {took:.0f} s (limit {limit:g} s)"
        return None

    def _claim_loop(self) -> None:
        e = self.cfg.engine
        renewed = looked = 0.0
        while not self._stop.is_set():
            try:
                self._expire()
                if time.monotonic() - looked > e.models_poll_s:  # a promotion or rollback, here or on another server
                    looked = time.monotonic()
                    if (live := self._live()) != self.bundles:
                        self._switch(live)
                free = e.max_in_flight - len(self.in_flight)
                jobs, exhausted = [], []
                if free > 0 and not self.stalled():  # a hung model: leave the queue to healthy servers
                    jobs, exhausted = self.store.uploads.claim(self.owner, free, e.job_lease_s, e.max_attempts)
                for uid in exhausted:
                    metrics.ERRORS.labels("worker_crash").inc()
                    log.warning("upload %s failed: it stopped its server %d times", uid, e.max_attempts)
                for job in jobs:
                    self._start(job)
                if time.monotonic() - renewed > e.job_lease_s / 3:
                    self.store.uploads.renew(self.owner, list(self.in_flight), e.job_lease_s)
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
        job["deadline"] = time.monotonic() + self.cfg.engine.job_deadline_s
        self.scanner.submit(self.files.path(job["sha256"]),  # stopping: its lease runs out, another engine takes it
                            lambda scan: self._stop.is_set() or self._hand.submit(self._scanned, job, scan))

    def _take(self, job: dict) -> bool:
        """True for the first caller only: the job leaves this engine, and that caller settles it."""
        with self._lock:
            if job.get("settled"):
                return False
            job["settled"] = True
            self.in_flight.pop(job["id"], None)
            return True

    def _expire(self) -> None:
        """Jobs past their deadline fail as `timeout` (their lease is renewed no more); a late result is dropped."""
        now = time.monotonic()
        for job in [j for j in list(self.in_flight.values()) if j["deadline"] < now]:
            if self._take(job):
                limit, why = self.cfg.engine.job_deadline_s, self.stalled()
                log.warning("upload %s did not finish in %g s%s", job["id"], limit, f": {why}" if why else "")
                self._finish(job, None, {"type": "Timeout", "reason": "timeout",
                                         "message": f"scoring did not finish within {limit:g} s"})

    def _scanned(self, job: dict, scan: Scan) -> None:
        if job.get("settled"):  # past its deadline already
            return
        if scan.error and scan.error["reason"] == "worker_crash":
            self._worker_died(job)
            return
        metrics.STAGE.labels("scan").observe(time.perf_counter() - job["t0"])
        self.scorer.submit(scan, lambda record: self._record(job, scan, record))
        if (shadow := self.shadow) and scan.error is None and self._shadowed(job["id"]):
            shadow.submit(scan, lambda record: self._shadow_record(job["id"], shadow, record))

    def _worker_died(self, job: dict) -> None:
        """Retry the job elsewhere, up to max_attempts; then it fails with that reason."""
        log.warning("a worker died while scanning upload %s (attempt %d)", job["id"], job["attempts"])
        self._again_or_fail(job, {"type": "WorkerCrash", "reason": "worker_crash",
                                  "message": "decoding this upload stopped its worker"})

    def _again_or_fail(self, job: dict, error: dict) -> None:
        """Back to the queue while attempts are left (this one counted), else failed with `error`."""
        if not self._take(job):
            return
        if job["attempts"] >= self.cfg.engine.max_attempts:
            self._finish(job, None, error)
        else:
            try:
                self.store.uploads.release(job["id"], self.owner)
            except Exception:  # its lease runs out and it is claimed again
                log.exception("releasing upload %s", job["id"])
            self._wake.set()

    def _record(self, job: dict, scan: Scan, record: Verdict | ErrorRecord) -> None:
        """Store the upload's result (on the batches' hooks thread), unless its job was settled already."""
        if isinstance(record, ErrorRecord) and record.error.get("retryable"):
            log.warning("upload %s: %s; it goes back to the queue", job["id"], record.error["message"][:200])
            self._again_or_fail(job, record.error)
            return
        if not self._take(job):
            log.info("upload %s was settled before its result came (deadline); the result is dropped", job["id"])
            return
        metrics.STAGE.labels("total").observe(time.perf_counter() - job["t0"])
        if isinstance(record, Verdict):
            try:
                self._keep_evidence(job["id"], scan, record)
            except Exception:  # evidence is a convenience: the Verdict is stored without it
                log.exception("keeping the evidence of upload %s", job["id"])
            if self._finish(job, record.model_dump(mode="json", exclude={"path", "index"}), None):
                metrics.DECISIONS.labels(record.decision).inc()
        else:  # messages name the upload, never where its bytes are stored
            message = re.sub(rf"[^\s'\"]*{job['sha256']}", f"upload {job['id']}", record.error.get("message", ""))
            self._finish(job, None, record.error | {"message": message})

    def _finish(self, job: dict, verdict: dict | None, error: dict | None) -> bool:
        """Store the settled job's result (unless another engine took it over); waiters and the loop hear of it."""
        try:
            stored = self.store.uploads.finish(job["id"], self.owner, verdict, error, self.cfg.review.queue_decisions)
            if not stored:
                log.warning("upload %s was taken over by another engine; its result here is dropped", job["id"])
            elif error:
                metrics.ERRORS.labels(error.get("reason", "error")).inc()
            return stored
        except Exception:  # the database is away: unrenewed, the lease runs out and the job is claimed again
            log.exception("storing the result of upload %s", job["id"])
            return False
        finally:
            self._notify(job["id"])
            self._wake.set()

    def _notify(self, upload_id: str) -> None:
        with self._lock:
            waiting = self._waiters.pop(upload_id, [])
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):  # its event loop has closed: the server is stopping
                loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))

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
