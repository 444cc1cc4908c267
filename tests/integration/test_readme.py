"""The README's quick start, run as written in a fresh clone of this repository: `make demo`, scoring one's
own files, and the server's block (keys, start, an upload with curl). The clone borrows this checkout's
.venv (building another takes minutes and gigabytes); PYTHONPATH makes it run the clone's code."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from detector import samples

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def block_under(heading: str) -> list[str]:
    """The command lines of the first sh block after `heading` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    body = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in body.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, dict]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing to clone")
    if not (ROOT / ".venv" / "bin" / "deepfake-detect").exists():
        pytest.skip("no .venv in this checkout (make test creates it)")
    where = tmp_path_factory.mktemp("readme") / "deepfake-detector"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
    (where / ".venv").symlink_to(ROOT / ".venv")
    for pins in ("requirements.lock", "pyproject.toml"):  # as old as the install, as in the checkout it serves
        os.utime(where / pins, (0, 0))
    env = os.environ | {"PYTHONPATH": str(where), "HF_HUB_OFFLINE": "1"}
    env.pop("DEEPFAKE_DEV", None)
    return where, env


def test_the_first_block_is_make_demo_and_make_test_and_make_demo_works(clone):
    where, env = clone
    lines = [line.split("#")[0].strip() for line in block_under("# deepfake-detector")]
    assert lines == ["make demo", "make test"]
    plan = subprocess.run(["make", "-n", "demo"], cwd=where, env=env, capture_output=True, text=True).stdout
    if "pip install" in plan:  # it would install into the borrowed .venv, pointing it at the clone
        pytest.skip("this checkout's .venv is not installed for its pins (run make first)")
    done = subprocess.run(["make", "demo"], cwd=where, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = [json.loads(line) for line in (where / "out" / "demo" / "results.jsonl").read_text().splitlines()]
    assert verdicts and all("decision" in v for v in verdicts)


def test_score_your_own_files_as_written(clone):
    where, env = clone
    face = samples.astronaut()
    samples.write_video(where / "clip.mp4", samples.moving_crop(face, 24), audio=samples.chirp(1.0))
    samples.write_image(where / "photo.jpg", face)
    (line,) = block_under("## Score your own files")
    done = subprocess.run(["bash", "-c", line], cwd=where, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(x) for x in (where / "results.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in records) == ["clip.mp4", "photo.jpg"] and all("decision" in r for r in records)


def test_the_server_block_as_written(clone):
    where, env = clone
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("port 8000, which the README's server uses, is taken on this machine")
    keys, serve, upload = block_under("## Start the server")[:2], block_under("## Start the server")[2], \
        block_under("## Start the server")[3]
    printed = [subprocess.run(["bash", "-c", line], cwd=where, env=env, capture_output=True, text=True, timeout=120)
               for line in keys]
    assert [p.returncode for p in printed] == [0, 0], [p.stderr for p in printed]
    if not (where / "clip.mp4").exists():
        samples.write_video(where / "clip.mp4", samples.moving_crop(samples.astronaut(), 24), audio=samples.chirp(1.0))
    server = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=where, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["curl", "-sf", "http://127.0.0.1:8000/readyz"], capture_output=True).returncode:
            assert server.poll() is None, server.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the server did not come up within 120 s"
            time.sleep(0.5)
        done = subprocess.run(["bash", "-c", upload], cwd=where, env=env | {"UPLOADER_KEY": printed[1].stdout.strip()},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["status"] == "scored" and answer["verdict"]["decision"] in {"likely_fake", "review", "clear", "no_signal"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
