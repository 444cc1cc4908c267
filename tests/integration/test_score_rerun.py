"""`deepfake-detect score` run twice over an unreadable upload: one record per upload, no retry unless asked."""

from __future__ import annotations

import csv
import json

from detector.cli import main


def test_a_corrupt_upload_keeps_one_record_and_is_retried_only_when_asked(bundles, media_dir, tmp_path, capsys):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\0" * 64)
    out, table = tmp_path / "results.jsonl", tmp_path / "results.csv"
    args = ["score", str(corrupt), str(media_dir / "astronaut.jpg"), "--visual", str(bundles[0]),
            "--audio", str(bundles[1]), "--out", str(out), "--csv", str(table)]

    def records() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()]

    assert main(args) == 3  # an input failed: the exit code says so, the summary names it
    first = records()
    assert len(first) == 2 and {r["path"]: r.get("error", {}).get("reason") for r in first}[str(corrupt)] == "corrupt"
    assert f"failed: {corrupt}: corrupt:" in capsys.readouterr().err

    assert main(args) == 0  # nothing scored this time, so nothing failed
    assert "2 uploads, 2 already in" in capsys.readouterr().err
    assert records() == first

    assert main([*args, "--retry-errors", "--allow-errors"]) == 0
    assert "1 already in" in capsys.readouterr().err
    again = records()
    assert len(again) == 2 and {r["path"] for r in again} == {str(corrupt), str(media_dir / "astronaut.jpg")}
    rows = {r["path"]: r for r in csv.DictReader(table.open())}
    assert len(rows) == 2 and rows[str(corrupt)]["error_type"] == "corrupt"


def test_every_input_path_keeps_its_record_and_another_model_scores_again(bundles, media_dir, tmp_path, capsys):
    twin = tmp_path / "copy_of_astronaut.jpg"
    twin.write_bytes((media_dir / "astronaut.jpg").read_bytes())
    out, table = tmp_path / "results.jsonl", tmp_path / "results.csv"
    paths = [str(media_dir / "astronaut.jpg"), str(twin)]
    args = ["score", *paths, "--visual", str(bundles[0]), "--audio", "none", "--out", str(out), "--csv", str(table)]
    assert main(args) == 0
    first = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(first) == sorted(paths) and len({r["id"] for r in first.values()}) == 1  # same bytes, two records
    assert all(r["software"].startswith("deepfake-detector ") and r["scored_at"].endswith("Z") for r in first.values())
    assert sorted(r["path"] for r in csv.DictReader(table.open())) == sorted(paths)
    capsys.readouterr()

    assert main(args) == 0
    assert "2 uploads, 2 already in" in capsys.readouterr().err
    assert main([*args[:-4], "--visual", "starter", "--out", str(out)]) == 0  # another model: scored again
    assert "2 uploads, 0 already in" in capsys.readouterr().err
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(again) == 2 and {r["models"][0]["version"] for r in again} != {first[paths[0]]["models"][0]["version"]}


def test_other_settings_score_again_and_speed_settings_do_not(bundles, media_dir, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    args = ["score", str(media_dir / "astronaut.jpg"), "--visual", str(bundles[0]), "--audio", "none", "--out", str(out)]
    assert main([*args, "--frames", "4"]) == 0
    capsys.readouterr()
    assert main([*args, "--frames", "4", "--batch-size", "2", "--workers", "0"]) == 0  # where and how fast: same Verdict
    assert "1 uploads, 1 already in" in capsys.readouterr().err
    assert main([*args, "--frames", "8"]) == 0  # another sampling can give another Verdict: scored again
    assert "1 uploads, 0 already in" in capsys.readouterr().err
    assert main([*args, "--frames", "8", "--declared-ai", "likely_fake"]) == 0  # another provenance policy too
    assert "1 uploads, 0 already in" in capsys.readouterr().err
