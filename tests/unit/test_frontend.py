"""The one front end: `scan` reads an upload, whatever goes wrong ends only that upload; `Scanner` runs
it in worker processes under a time limit and answers every upload."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import pytest

from detector.frontend import scan as frontend
from detector.config import AudioConfig, FaceConfig, SamplingConfig
from detector.frontend.scan import ScanSettings, Scanner, scan, scan_many

SETTINGS = ScanSettings(sampling=SamplingConfig(frames=6), faces=FaceConfig(device="cpu"),
                        audio=AudioConfig(window_s=1.0, hop_s=0.5))


def test_scan_many_reads_every_upload_and_keeps_going_past_bad_ones(media_dir, tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    paths = [media_dir / "pan.mp4", tmp_path / "bad.mp4", media_dir / "coffee.mp4", media_dir / "chirp.wav",
             media_dir / "astronaut.jpg", tmp_path / "missing.png"]
    scans = {s.path: s for s in scan_many(paths, SETTINGS.model_copy(update={"thumbnail_side": 64}), workers=2)}
    assert set(scans) == {str(p) for p in paths}
    pan, coffee, chirp = (scans[str(media_dir / n)] for n in ("pan.mp4", "coffee.mp4", "chirp.wav"))
    assert [len(f.faces) for f in pan.frames] == [1] * 6 and len(pan.tracks) == 1
    assert pan.segments[-1].end > 1.5 and all(x is not None for x in pan.windows)  # its chirp sound track
    assert sorted(pan.thumbnails) == list(range(6)) and pan.thumbnails[0][:2] == b"\xff\xd8"
    assert [len(f.faces) for f in coffee.frames] == [0] * 6 and coffee.thumbnails == {}
    assert chirp.frames == [] and len(chirp.segments) == 3  # audio: no frames, 2 s in 1 s windows
    assert scans[str(tmp_path / "bad.mp4")].error["reason"] == "unsupported"
    assert scans[str(tmp_path / "bad.mp4")].sha256 is not None  # an error record still names the upload
    assert scans[str(tmp_path / "missing.png")].error["reason"] == "unsupported"


def hanging(*args, **kwargs):
    threading.Event().wait()  # a sound track the decoder never finishes
    yield


def broken(*args, **kwargs):
    raise RuntimeError("decoder bug")
    yield


def test_a_decoder_raising_anything_ends_its_upload_with_the_reason(media_dir, monkeypatch):
    monkeypatch.setattr(frontend, "iter_frames", broken)
    read = scan(media_dir / "pan.mp4", SETTINGS)
    assert read.error == {"type": "RuntimeError", "reason": "internal", "message": "decoder bug"}
    monkeypatch.setattr(frontend, "iter_audio", broken)
    read = scan(media_dir / "chirp.wav", SETTINGS)
    assert read.error["message"] == "audio track: decoder bug"


def faulty_scan(path: str, settings: ScanSettings):
    """`scan` in a worker whose decoder hangs on hang.*, raises on raise.*, and kills its process on die.*."""
    name = Path(path).name
    frontend.iter_audio = hanging if name.startswith("hang") else frontend.iter_audio
    frontend.iter_frames = broken if name.startswith("raise") else frontend.iter_frames
    if name.startswith("die"):
        os._exit(1)
    return frontend.scan(path, settings)


def test_a_worker_whose_audio_hangs_raises_or_dies_answers_and_the_scanner_carries_on(media_dir, tmp_path):
    for name in ("hang.wav", "raise.mp4", "die.png"):
        (tmp_path / name).write_bytes((media_dir / ("chirp.wav" if name == "hang.wav" else "pan.mp4")).read_bytes())
    answers: queue.SimpleQueue = queue.SimpleQueue()
    with Scanner(SETTINGS, workers=1, timeout_s=5, fn=faulty_scan) as scanner:
        for name in ("hang.wav", "raise.mp4", "die.png"):
            scanner.submit(tmp_path / name, answers.put)
            got = answers.get(timeout=60)
            assert Path(got.path).name == name
            assert got.error["reason"] == {"hang.wav": "timeout", "raise.mp4": "internal", "die.png": "worker_crash"}[name]
        scanner.submit(media_dir / "astronaut.jpg", answers.put)  # new workers took over
        ok = answers.get(timeout=60)
    assert ok.error is None and len(ok.frames[0].faces) == 1


@pytest.mark.parametrize("culprit, reason", [("hang.wav", "timeout"), ("die.png", "worker_crash")])
def test_an_upload_that_stops_its_worker_fails_alone(culprit, reason, media_dir, tmp_path):
    (tmp_path / culprit).write_bytes((media_dir / ("chirp.wav" if culprit == "hang.wav" else "pan.mp4")).read_bytes())
    innocent = [media_dir / n for n in ("pan.mp4", "astronaut.jpg", "chirp.wav", "silent.mp4")]
    answers: queue.SimpleQueue = queue.SimpleQueue()
    with Scanner(SETTINGS, workers=2, timeout_s=20, fn=faulty_scan) as scanner:  # ample for the others
        for path in (tmp_path / culprit, *innocent):  # beside it in the workers, or waiting for one
            scanner.submit(path, answers.put)
        got = {Path(s.path).name: s for s in (answers.get(timeout=60) for _ in range(5))}
    assert got[culprit].error["reason"] == reason
    assert all(got[p.name].error is None for p in innocent)


def test_closing_stops_the_workers_and_answers_every_scan(media_dir, tmp_path):
    (tmp_path / "hang.wav").write_bytes((media_dir / "chirp.wav").read_bytes())
    answers: queue.SimpleQueue = queue.SimpleQueue()
    scanner = Scanner(SETTINGS, workers=1, timeout_s=600, fn=faulty_scan)
    scanner.submit(tmp_path / "hang.wav", answers.put)  # holds the only worker
    scanner.submit(media_dir / "astronaut.jpg", answers.put)  # waits for it
    scanner.close()
    scanner.submit(media_dir / "coffee.png", answers.put)  # after close
    got = {Path(s.path).name: s.error["reason"] for s in (answers.get(timeout=30) for _ in range(3))}
    assert got == {"hang.wav": "cancelled", "astronaut.jpg": "cancelled", "coffee.png": "cancelled"}


@pytest.mark.parametrize("shape", [(1, 60_000), (60_000, 1)])
def test_a_degenerate_image_is_read_and_thumbnailed_as_an_image_without_faces(tmp_path, shape):
    import numpy as np

    from detector import samples

    path = samples.write_image(tmp_path / "thin.png", np.full((*shape, 3), 128, np.uint8))
    out = scan(path, ScanSettings(faces=FaceConfig(device="cpu"), thumbnail_side=320))
    assert out.error is None and [len(f.faces) for f in out.frames] == [0]  # no_signal, not an internal error
