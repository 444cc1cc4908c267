"""What a user sees for ordinary mistakes and weak models: one line, a typed error, a caution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.cli import main
from detector.recipes.operating import caution
from detector.scoring.scorer import Scorer


@pytest.mark.parametrize(("argv", "message"), [
    (["score", "x.jpg", "--out", "r.jsonl", "--workers", "-1"], "argument --workers: -1 is below 0"),
    (["score", "x.jpg", "--out", "r.jsonl", "--device", "tpu"], "argument --device: 'tpu': expected auto, cpu"),
    (["score", "x.jpg", "--out", "r.jsonl", "--accelerator", "banana"], "argument --accelerator: invalid choice"),
    (["evaluate", "--dataset", "bogus", "--root", "x", "--out", "y"], "argument --dataset: invalid choice: 'bogus'"),
    (["fuse", "--results", "r", "--labels", "l", "--out", "o", "--fpr", "2"], "argument --fpr: 2 is not a rate from 0 up to 1"),
    (["report", "--since", "2026-13-45"], "argument --since: '2026-13-45' is not a date as YYYY-MM-DD"),
    (["report", "--since", "2026-01-01"], "report reads a server's database: name its settings with --config"),
    (["serve", "--port", "99999"], "argument --port: 99999 is out of range: 1 to 65535"),
    (["score", "--manifest", "m.csv", "--out", "r.jsonl"], "m.csv: a manifest needs a `path` column; it has ['file', 'label']"),
    (["evaluate", "--dataset", "folder", "--root", ".", "--option", "foo=bar", "--out", "ev"],
     "dataset 'folder' takes no option foo; it takes: group_regex"),
    (["serve", "--config", "s.yaml"], "/nonexistent: not a checkpoint bundle (no bundle.json)"),
])
def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("file,label\nx.jpg,1\n")
    (tmp_path / "s.yaml").write_text("visual: /nonexistent\naudio: none\nwebhooks: {secret: a-secret-of-its-own-123}\n")
    try:
        code = main(argv)  # a mistake found while running
    except SystemExit as e:  # one found while parsing
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "var").exists()  # nothing created on the way


def test_an_image_array_of_the_wrong_shape_or_type_is_a_value_error():
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) uint8 RGB, not \(64, 64\) float32"):
        Scorer(audio=None).score(np.zeros((64, 64), np.float32))


def test_a_model_weak_on_unseen_sources_comes_with_a_caution():
    weak = [{"auc": 0.55}, {"auc": 0.49}, {"auc": 0.56}, {"auc": None}]
    assert caution(weak).startswith("weak on sources it was not trained on (leave-one-source-out mean AUC 0.53 over 3")
    assert caution([{"auc": 0.8}, {"auc": 0.75}]) == ""
    (warning,) = Scorer(audio=None).warnings  # the shipped face model's table calls for one
    assert warning.startswith("the visual model starter-face") and "weak on sources it was not trained on" in warning


def test_without_a_terminal_tables_keep_whole_paths_on_one_line(media_dir, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "photo_with_a_long_name_of_its_own.jpg"
    deep.parent.mkdir(parents=True)
    deep.write_bytes((media_dir / "astronaut.jpg").read_bytes())
    r = subprocess.run([sys.executable, "-m", "detector.cli", "faces", str(deep)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-1000:]
    assert any(str(deep) in line for line in r.stdout.splitlines()), r.stdout


@pytest.mark.slow
def test_training_before_preprocessing_says_what_to_run_in_one_line(tmp_path):
    config = Path(__file__).resolve().parents[2] / "configs" / "visual" / "cpu_small.yaml"
    r = subprocess.run([sys.executable, "-m", "detector.cli", "train", "fit", "--config", str(config)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("deepfake-detect train: error: out/cache/dfdc_crops: no crops; "
                                                 "run `deepfake-detect preprocess` first")
