"""One pipeline: the batch scorer, `evaluate` and the server give the same Verdict for the same file,
and every fault (a model that raises, hangs or runs out of memory, a decoder that raises, a sound
track or a header that hangs) ends its upload with a reason, or retries it, while the server goes on
scoring."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import KEYS, in_process, server_config

from detector import samples

from detector.frontend import scan as frontend
from detector.config import SamplingConfig
from detector.datasets import Row
from detector.evaluate import evaluate
from detector.scoring.scorer import Scorer

pytestmark = pytest.mark.slow
SAMPLING = {"frames": 8}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A generated talking-head clip: a face moving across the frame, with a chirp sound track."""
    path = tmp_path_factory.mktemp("sample") / "clip.mp4"
    return samples.write_video(path, samples.moving_crop(samples.astronaut(), 24), audio=samples.chirp(1.0))


def comparable(verdict: dict) -> dict:
    return {k: v for k, v in verdict.items() if k not in ("path", "timings_ms", "scored_at", "index")}


def upload(client, path: Path, wait: float = 60) -> dict:
    r = client.post("/v1/uploads", params={"wait": wait}, content=path.read_bytes(),
                    headers={"X-API-Key": KEYS["uploader"]})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_batch_scorer_evaluate_and_the_server_give_one_verdict(bundles, sample, tmp_path):
    (batch,) = Scorer(bundles[0], None, device="cpu", sampling=SamplingConfig(**SAMPLING)).score_many([sample])
    evaluate(bundles[0], [Row(str(sample), 1, "test", "clip", "generated")], tmp_path / "report", frames=8, device="cpu")
    (evaluated,) = [json.loads(line) for line in (tmp_path / "report" / "verdicts.jsonl").read_text().splitlines()]
    with in_process(server_config(bundles, tmp_path, audio="none", sampling=SAMPLING)) as (client, _):
        served = upload(client, sample)["verdict"]
    assert batch.visual.frames_scored == 8 and len(batch.visual.faces) == 1  # the clip's face, in every frame
    assert comparable(batch.model_dump(mode="json")) == comparable(evaluated) == comparable(served)


def hanging(*args, **kwargs):
    threading.Event().wait()  # a sound track whose decoding never ends
    yield


def broken(*args, **kwargs):
    raise RuntimeError("decoder bug")
    yield


def scan_with(path: str, settings, **decoders):
    """`scan` in a server worker with some of its decoders replaced (for this upload only)."""
    kept = {name: getattr(frontend, name) for name in decoders}
    vars(frontend).update(decoders)
    try:
        return frontend.scan(path, settings)
    finally:
        vars(frontend).update(kept)


def scan_with_hanging_audio(path: str, settings):
    return scan_with(path, settings, iter_audio=hanging)


def scan_with_broken_frames(path: str, settings):
    return scan_with(path, settings, iter_frames=broken)


def probe_that_hangs(path: str, settings):
    threading.Event().wait()  # a header whose parsing never ends


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    cfg = server_config(bundles, folder, sampling=SAMPLING, engine={"workers": 1, "job_timeout_s": 10, "admission_timeout_s": 5})
    with in_process(cfg) as (client, api):
        yield client, api


def still_serving(client, media_dir) -> None:
    up = upload(client, media_dir / "astronaut.jpg")
    assert up["status"] == "scored" and up["verdict"]["decision"] == "review"


def test_a_model_that_raises_mid_batch_fails_the_uploads_in_that_batch(server, media_dir, monkeypatch):
    client, api = server
    crops = api.engine.scorer.crops

    def run(xs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(crops, "run", run)
    up = upload(client, media_dir / "pan.mp4")
    assert up["status"] == "failed" and up["error"]["reason"] == "model_error"
    assert "illegal memory access" in up["error"]["message"]
    monkeypatch.undo()
    still_serving(client, media_dir)


def test_a_decoder_that_raises_fails_its_upload(server, media_dir, monkeypatch):
    client, api = server
    monkeypatch.setattr(api.engine.scanner, "fn", scan_with_broken_frames)
    up = upload(client, media_dir / "pan.mkv")
    assert up["status"] == "failed" and up["error"] == {"type": "RuntimeError", "reason": "internal",
                                                        "message": "decoder bug"}
    monkeypatch.undo()
    still_serving(client, media_dir)


def test_a_sound_track_that_hangs_times_out_alone(server, media_dir, monkeypatch):
    client, api = server
    monkeypatch.setattr(api.engine.scanner, "fn", scan_with_hanging_audio)
    up = upload(client, media_dir / "chirp.wav")
    assert up["status"] == "failed" and up["error"]["reason"] == "timeout"
    monkeypatch.undo()
    still_serving(client, media_dir)


def test_a_header_that_hangs_is_refused_in_time_and_the_server_goes_on(server, media_dir, monkeypatch):
    client, api = server
    monkeypatch.setattr(api.engine.admission, "fn", probe_that_hangs)
    r = client.post("/v1/uploads", content=(media_dir / "pan.mp4").read_bytes(), headers={"X-API-Key": KEYS["uploader"]})
    assert r.status_code == 422 and r.json()["error"] == "timeout", r.text
    monkeypatch.undo()
    still_serving(client, media_dir)


def test_a_batch_that_fails_is_run_again_one_input_at_a_time(server, media_dir, monkeypatch):
    client, api = server
    crops = api.engine.scorer.crops
    real, sizes = crops.run, []

    def fails_batched(xs):  # e.g. a launch too big for the device
        sizes.append(len(xs))
        if len(xs) > 1:
            raise RuntimeError("CUDA error: too many resources requested for launch")
        return real(xs)

    monkeypatch.setattr(crops, "run", fails_batched)
    up = upload(client, media_dir / "pan.mp4")
    assert up["status"] == "scored" and len(up["verdict"]["visual"]["faces"][0]["frames"]) == 8
    assert sizes[0] == 8 and sizes[1:] == [1] * 8  # the batch of the clip's 8 crops, then each alone


def test_out_of_memory_sends_the_upload_back_to_the_queue_as_an_attempt(server, media_dir, monkeypatch):
    client, api = server
    crops = api.engine.scorer.crops
    real, calls = crops.run, []

    def out_of_memory_once(xs):
        calls.append(len(xs))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(xs)

    monkeypatch.setattr(crops, "run", out_of_memory_once)
    up = upload(client, media_dir / "astronaut.jpg")
    assert up["status"] == "scored" and api.store.uploads.get(up["id"])["attempts"] == 2
    assert [e["action"] for e in api.store.audit.events(up["id"])][:2] == ["uploaded", "scored"]  # scored once


def test_a_model_that_hangs_fails_its_upload_at_the_deadline_and_readyz_says_why(bundles, media_dir, tmp_path,
                                                                                  monkeypatch):
    cfg = server_config(bundles, tmp_path, audio="none", sampling=SAMPLING,
                        engine={"workers": 1, "job_timeout_s": 5, "job_deadline_s": 8, "model_stall_s": 1})
    release = threading.Event()
    with in_process(cfg) as (client, api):
        crops = api.engine.scorer.crops
        real = crops.run
        monkeypatch.setattr(crops, "run", lambda xs: release.wait(120) and real(xs))
        try:
            started = time.monotonic()
            up = upload(client, media_dir / "astronaut.jpg", wait=30)
            assert up["status"] == "failed" and up["error"]["reason"] == "timeout"
            assert up["error"]["message"] == "scoring did not finish within 8 s"
            assert time.monotonic() - started < 20  # at its deadline, not at ?wait='s end
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "the visual model has been running one batch for" in ready.json()["detail"]
        finally:
            release.set()
        monkeypatch.undo()
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:  # the hung call returned: ready again
            assert time.monotonic() < deadline
            time.sleep(0.1)
        still_serving(client, media_dir)
