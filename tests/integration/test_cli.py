"""The `deepfake-detect` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("deepfake-detect")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})


def test_faces_command_reports_every_file(media_dir, tmp_path, cli):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\0" * 64)
    out = tmp_path / "faces.jsonl"
    crops = tmp_path / "crops"
    code, stdout, stderr = cli("faces", str(media_dir / "pan.mp4"), str(media_dir / "coffee.png"),
                               str(tmp_path / "broken.mp4"), str(media_dir / "chirp.flac"), "--frames", "6",
                               "--out", str(out), "--save-crops", str(crops))
    assert code == 3, stderr  # one file could not be read
    records = {Path(x["path"]).name: x for x in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"pan.mp4", "coffee.png", "broken.mp4", "chirp.flac"}
    pan = records["pan.mp4"]
    assert pan["frames_read"] == 6 and pan["faces_per_frame"] == [1] * 6 and len(pan["tracks"]) == 1
    assert len(pan["frames"][0]["faces"][0]["landmarks"]) == 5
    assert records["coffee.png"]["faces_per_frame"] == [0]
    assert records["broken.mp4"]["error"]["type"] == "CorruptMedia"
    assert records["chirp.flac"]["media_type"] == "audio"
    assert len(list(crops.rglob("*.jpg"))) == 6
    assert "pan.mp4" in stdout and "CorruptMedia" in stdout


def test_faces_reads_every_file_in_a_folder(media_dir, tmp_path, cli):
    out = tmp_path / "all.jsonl"
    code, _, stderr = cli("faces", str(media_dir), "--frames", "2", "--out", str(out))
    assert code == 0, stderr
    assert len(out.read_text().splitlines()) == len([p for p in media_dir.iterdir() if p.is_file()])


def test_bad_config_is_a_clear_error(tmp_path, cli):
    (tmp_path / "c.yaml").write_text("faces:\n  nope: 1\n")
    code, _, stderr = cli("faces", "x.jpg", "--frontend", str(tmp_path / "c.yaml"))
    assert code != 0 and "nope" in stderr


@pytest.mark.slow
def test_demo_trains_and_scores_end_to_end(tmp_path):
    r = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr[-3000:]
    verdicts = {Path(v["path"]).name: v for v in map(json.loads, (tmp_path / "demo" / "results.jsonl").read_text().splitlines())}
    assert len(verdicts) == 8 and all("decision" in v for v in verdicts.values())
    assert verdicts["coffee.png"]["decision"] == verdicts["coffee_pan.webm"]["decision"] == "no_signal"
    assert verdicts["voice_note.flac"]["visual"] is None and verdicts["interview.mp4"]["audio"]["score"] is not None
    # what the two small models learned, in the same direction as their training data
    assert verdicts["astronaut_blended.jpg"]["score"] > verdicts["astronaut.jpg"]["score"]
    assert verdicts["voice_note_cloned.flac"]["score"] > verdicts["voice_note.flac"]["score"]
    assert "must not be used for real decisions" in r.stdout


def test_progress_is_written_as_lines_when_stderr_is_not_a_terminal(media_dir, capsys):
    from detector.cli import main

    files = [str(media_dir / name) for name in ("astronaut.jpg", "coffee.png", "chirp.flac")]
    assert main(["faces", *files, "--frames", "2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scanning: ")]
    assert lines[0].startswith("scanning: 1/3 in ") and lines[-1].startswith("scanning: 3/3 in ")


def test_the_cli_runs_as_a_module_with_its_plugins():
    r = subprocess.run([sys.executable, "-m", "detector.cli", "serve", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.startswith("usage: deepfake-detect serve")


def test_a_source_tree_reads_its_version_and_plugins_from_pyproject(monkeypatch):
    import importlib.metadata

    from detector import cli
    from detector.version import version as cached

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **group: [])
    cached.cache_clear()
    try:
        version, plugins = cli.project()
    finally:
        cached.cache_clear()  # the next caller reads the installed version again
    assert version.endswith("(source tree)") and plugins == ["serve.cli"]
