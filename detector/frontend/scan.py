"""The front end: everything read from an upload, in one picklable call that every path to a Verdict runs.

`scan(path, settings)` probes once, then reads sampled frames (faces, tracks, crops), voiced audio
windows and the C2PA manifest. `Scanner` runs it in worker processes under a time limit; a scan that
raises, hangs or kills its worker still comes back, as a Scan with its error.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
from PIL import Image

from detector.frontend import WORKER_PRELOAD
from detector.frontend.audio import AudioWindow, voiced_windows
from detector.config import AudioConfig, FaceConfig, MediaLimits, SamplingConfig, FrozenSettings
from detector.frontend.faces import FaceDetector, FrameFaces, Track, link_tracks, scale_image
from detector.frontend.media import Frame, MediaInfo, iter_audio, iter_frames, probe
from detector.frontend.provenance import Provenance, ProvenancePolicy

log = logging.getLogger(__name__)


class ScanSettings(FrozenSettings):
    """What to read from an upload; a modality without settings is not read."""

    limits: MediaLimits = MediaLimits()
    sampling: SamplingConfig = SamplingConfig()
    faces: FaceConfig | None = None  # None: no frames read
    audio: AudioConfig | None = None  # None: no audio read
    provenance: ProvenancePolicy = ProvenancePolicy()
    thumbnail_side: int = 0  # > 0: a JPEG of every frame with a face, its long side this many pixels


@dataclass
class Scan:
    """What the front end read from one upload: all that the models and the Verdict need."""

    path: str
    sha256: str | None = None
    info: MediaInfo | None = None
    frames: list[FrameFaces] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    segments: list[AudioWindow] | None = None  # audio windows; None: audio not read
    windows: list[np.ndarray | None] = field(default_factory=list)  # each segment's network input; None: not voiced
    provenance: Provenance | None = None
    thumbnails: dict[int, bytes] = field(default_factory=dict)  # frame index -> JPEG, frames with faces
    error: dict | None = None  # type, reason, message: the upload cannot be scored
    took_ms: float = 0.0
    index: int | None = None  # its position among the paths given to `scan_many`

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        info = self.info
        return {
            "path": self.path,
            "media_type": info.media_type,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "duration_s": round(info.duration_s, 3),
            "frames_read": len(self.frames),
            "faces_per_frame": [len(f.faces) for f in self.frames],
            "frames": [{"index": f.index, "t": round(f.t, 3), "faces": [x.to_dict() for x in f.faces]}
                       for f in self.frames],
            "tracks": [t.to_dict(self.frames) for t in self.tracks],
        }


def error_record(e: BaseException, where: str = "") -> dict:
    """An exception as an error record: media problems keep their reason, anything else is `internal`."""
    return {"type": type(e).__name__, "reason": getattr(e, "reason", "internal"), "message": where + str(e)}


def probe_only(path: str, settings: ScanSettings) -> Scan:
    """The probe alone (a server's check of an upload at the door), failing like `scan` does."""
    try:
        return Scan(path, info=probe(path, settings.limits))
    except Exception as e:  # noqa: BLE001 - whatever the decoder raised ends this upload
        if not hasattr(e, "reason"):
            log.exception("probing %s", path)
        return Scan(path, error=error_record(e))


def file_id(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=2)
def _detector(cfg: FaceConfig) -> FaceDetector:
    return FaceDetector(cfg)


def scan(path: str | Path, settings: ScanSettings) -> Scan:
    """Read one upload; never raises: whatever went wrong is the Scan's `error`."""
    started = time.perf_counter()
    out, where = Scan(str(path)), ""
    try:
        with contextlib.suppress(OSError):  # unreadable: probe says why
            out.sha256 = file_id(path)
        out.info = info = probe(path, settings.limits)
        if settings.faces is not None and info.media_type != "audio":
            detector = _detector(settings.faces)
            frames = iter_frames(path, settings.sampling, settings.limits, info)
            if settings.thumbnail_side:
                frames = _thumbnailed(frames, out.thumbnails, settings.thumbnail_side)
            out.frames = detector.scan(frames)
            out.tracks = link_tracks(out.frames, detector.cfg)
            with_faces = {f.index for f in out.frames if f.faces}
            out.thumbnails = {i: jpeg for i, jpeg in out.thumbnails.items() if i in with_faces}
        if settings.audio is not None and info.has_audio:
            where, out.segments = "audio track: ", []
            for seg, x in voiced_windows(iter_audio(path, settings.limits, sample_rate=settings.audio.sample_rate,
                                                    info=info), settings.audio):
                out.segments.append(seg)
                out.windows.append(x)
            where = ""
        out.provenance = settings.provenance.read_file(path)
    except Exception as e:  # noqa: BLE001 - any failure ends this upload, and only this one
        if not hasattr(e, "reason"):
            log.exception("scanning %s", path)
        out.error = error_record(e, where)
    out.took_ms = round((time.perf_counter() - started) * 1000, 1)
    return out


def save_crops(scan: Scan, root: str | Path) -> Path:
    """Write a scan's crops as `ROOT/<file stem>-<path hash>/t<track>_f<frame>.jpg`."""
    folder = Path(root) / f"{Path(scan.path).stem}-{hashlib.sha1(scan.path.encode()).hexdigest()[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    for frame in scan.frames:
        for face in frame.faces:
            if face.crop is not None:
                Image.fromarray(face.crop).save(folder / f"t{face.track}_f{frame.index:04d}.jpg", quality=95)
    return folder


def _thumbnailed(frames: Iterator[Frame], into: dict[int, bytes], side: int) -> Iterator[Frame]:
    for frame in frames:
        into[frame.index] = thumbnail(frame.image, side)
        yield frame


def thumbnail(image: np.ndarray, side: int) -> bytes:
    """(H, W, 3) RGB -> JPEG bytes, the long side at most `side` pixels."""
    small = scale_image(image, min(1.0, side / max(image.shape[:2])))  # a 60000 x 1 image keeps its row
    return cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the machine with each other and the models
    threading.Thread(target=_exit_with_parent, daemon=True, name="exit-with-parent").start()


def _exit_with_parent() -> None:
    """In a worker: end as soon as the process that started it is gone, however it ended (kill -9 included)."""
    wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


CANCELLED = {"type": "Cancelled", "reason": "cancelled", "message": "the scanner was closed before reading it"}


class Scanner:
    """Runs `fn` (`scan`) in `workers` processes; every `submit` gets exactly one Scan back.

    Scans wait here until a worker is free, so a scan's `timeout_s` counts from its start. One that
    runs over it stops its workers (new ones take over) and comes back with reason `timeout`; the
    scans beside it are read again. When a worker dies, the scans that were in flight are read again
    one at a time in a worker of their own: the one that kills that worker too comes back with
    `worker_crash`, the others with what they read. `done` runs on whichever thread settles the scan
    (a result thread, or the caller of `submit` or `close`): keep it short.
    """

    def __init__(self, settings: ScanSettings, workers: int = 2, timeout_s: float | None = None,
                 fn: Callable[[str, ScanSettings], Scan] = scan):
        self.settings, self.workers, self.timeout_s, self.fn = settings, max(1, workers), timeout_s, fn
        self._lock = threading.Lock()
        self._late: set[Future] = set()
        self._stopped: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # for another scan's timeout
        self._closed = False
        # "shared": every upload; "alone": one worker reading the suspects of a crash one by one
        self._pools: dict[str, ProcessPoolExecutor | None] = {"shared": None, "alone": None}
        self._size = {"shared": self.workers, "alone": 1}
        self._busy = {"shared": 0, "alone": 0}
        self._waiting: dict[str, collections.deque] = {"shared": collections.deque(), "alone": collections.deque()}

    def _renew(self, name: str) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")  # workers fork from one process that imported torch once
        ctx.set_forkserver_preload(WORKER_PRELOAD)
        self._pools[name] = ProcessPoolExecutor(self._size[name], mp_context=ctx, initializer=_init_worker)
        return self._pools[name]

    def submit(self, path: str | Path, done: Callable[[Scan], None]) -> None:
        self._queue(str(path), done, "shared")

    def _queue(self, path: str, done: Callable[[Scan], None], name: str, again: bool = False) -> None:
        with self._lock:
            closed = self._closed
            if not closed:  # a scan read again goes first: it has waited already
                (self._waiting[name].appendleft if again else self._waiting[name].append)((path, done))
        if closed:
            return _answer(done, Scan(path, error=CANCELLED))
        self._fill(name)

    def _fill(self, name: str) -> None:
        """Start waiting scans while pool `name` has a free worker."""
        while True:
            with self._lock:
                if self._closed or self._busy[name] >= self._size[name] or not self._waiting[name]:
                    return
                path, done = self._waiting[name].popleft()
                pool = self._pools[name] or self._renew(name)
                try:
                    try:
                        future = pool.submit(self.fn, path, self.settings)
                    except BrokenProcessPool:  # a worker died: new ones take over
                        pool = self._renew(name)
                        future = pool.submit(self.fn, path, self.settings)
                    self._busy[name] += 1
                except Exception as e:  # noqa: BLE001 - no worker could be started (out of processes, memory)
                    future, failed = None, Scan(path, error=error_record(e, "starting a worker: "))
            if future is None:
                _answer(done, failed)
                continue
            timer = threading.Timer(self.timeout_s, self._expire, (future, pool)) if self.timeout_s else None
            if timer:
                timer.daemon = True
                timer.start()
            future.add_done_callback(functools.partial(self._finished, pool=pool, path=path, timer=timer,
                                                       done=done, name=name))

    def _expire(self, future: Future, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if future.done():
                return
            self._late.add(future)
            self._stopped.add(pool)
            for name, current in self._pools.items():
                if current is pool and not self._closed:
                    self._renew(name)
        log.warning("a scan ran over %g s: stopping its workers", self.timeout_s)
        _stop(pool)

    def _finished(self, future: Future, pool: ProcessPoolExecutor, path: str, timer: threading.Timer | None,
                  done: Callable[[Scan], None], name: str) -> None:
        if timer:
            timer.cancel()
        with self._lock:
            self._busy[name] -= 1
            late = future in self._late
            self._late.discard(future)
            stopped, closed = pool in self._stopped, self._closed
        try:
            result = future.result()
        except BaseException as e:  # noqa: BLE001 - the worker died, was stopped, or its result did not pickle
            broken = isinstance(e, BrokenProcessPool)
            if late:
                result = Scan(path, error={"type": "TimeoutError", "reason": "timeout",
                                           "message": f"reading the upload took over {self.timeout_s:g} s"})
            elif future.cancelled() or (broken and closed):  # close() stopped it
                result = Scan(path, error=CANCELLED)
            elif broken and (stopped or name == "shared"):
                # stopped for another scan's timeout: read it again; in flight when a worker died: read it alone
                self._queue(path, done, name if stopped else "alone", again=True)
                return self._fill(name)
            elif broken:  # read alone, and it killed that worker too
                result = Scan(path, error={"type": "WorkerCrash", "reason": "worker_crash",
                                           "message": "reading this upload stopped its worker"})
            else:
                result = Scan(path, error=error_record(e))
        _answer(done, result)
        self._fill(name)

    def close(self) -> None:
        """Stop the workers at once; scans not finished come back with reason `cancelled`."""
        with self._lock:
            self._closed = True
            pools = [p for p in self._pools.values() if p]
            waiting = [item for q in self._waiting.values() for item in q]
            for q in self._waiting.values():
                q.clear()
        for pool in pools:
            _stop(pool)
        for path, done in waiting:
            _answer(done, Scan(path, error=CANCELLED))

    def __enter__(self) -> "Scanner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers (their scans fail with BrokenProcessPool) and let it go."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.kill()  # before shutdown, which forgets them (and a hung one would then hold up exit)
    pool.shutdown(wait=False, cancel_futures=True)


def _answer(done: Callable[[Scan], None], result: Scan) -> None:
    try:
        done(result)
    except Exception:  # a caller's callback failing must not stop the scanner
        log.exception("handing back the scan of %s", result.path)


def scan_many(paths: Iterable[str | Path], settings: ScanSettings, workers: int = 2,
              timeout_s: float | None = None) -> Iterator[Scan]:
    """Scans as uploads finish (not in input order: each knows its `index`), from `workers` processes a few
    uploads ahead (0: one by one in this process, with no time limit)."""
    if not workers:
        for i, path in enumerate(paths):
            out = scan(path, settings)
            out.index = i
            yield out
        return
    done: queue.SimpleQueue = queue.SimpleQueue()
    todo, in_flight = enumerate(paths), 0
    with Scanner(settings, workers, timeout_s) as scanner:
        while True:
            while in_flight < 2 * workers and (item := next(todo, None)) is not None:
                scanner.submit(item[1], lambda out, i=item[0]: done.put(_indexed(out, i)))
                in_flight += 1
            if not in_flight:
                return
            yield done.get()
            in_flight -= 1


def _indexed(out: Scan, index: int) -> Scan:
    out.index = index
    return out
