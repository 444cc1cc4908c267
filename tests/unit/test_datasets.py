"""Dataset adapters yield the manifest rows of the design, with no group straddling two splits."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from detector.datasets import SPLITS, manifest, names, parse_label


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def assert_leak_free(rows):
    splits = defaultdict(set)
    for r in rows:
        assert r.split in SPLITS and r.label in (0, 1) and Path(r.path).is_absolute()
        splits[r.group].add(r.split)
    assert all(len(s) == 1 for s in splits.values())


def test_registry_lists_every_adapter():
    assert {"ffpp", "celebdf", "dfdc", "folder", "csv"} <= set(names())
    with pytest.raises(KeyError, match="known"):
        manifest("nope", ".")


def test_ffpp_official_layout_and_splits(tmp_path):
    for vid in ("000", "003", "001", "002"):
        touch(tmp_path / f"original_sequences/youtube/c23/videos/{vid}.mp4")
    for method in ("Deepfakes", "FaceSwap"):
        for pair in ("000_003", "003_000", "001_002", "002_001"):
            touch(tmp_path / f"manipulated_sequences/{method}/c23/videos/{pair}.mp4")
    touch(tmp_path / "manipulated_sequences/Deepfakes/c40/videos/000_003.mp4")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.json").write_text(json.dumps([["000", "003"]]))
    (tmp_path / "splits/test.json").write_text(json.dumps([["002", "001"]]))
    rows = manifest("ffpp", tmp_path, methods=["Deepfakes", "FaceSwap"])
    assert len(rows) == 4 + 8
    assert_leak_free(rows)
    by_name = {Path(r.path).name + r.source: r for r in rows}
    assert by_name["000.mp4ffpp/original"].split == "train" and by_name["000.mp4ffpp/original"].label == 0
    assert by_name["003_000.mp4ffpp/Deepfakes"].group == "000_003"
    assert by_name["001_002.mp4ffpp/FaceSwap"].split == "test" and by_name["001_002.mp4ffpp/FaceSwap"].label == 1
    assert len(manifest("ffpp", tmp_path, compression="c40", methods=["Deepfakes"])) == 1
    with pytest.raises(ValueError, match="unknown FF\\+\\+ methods"):
        manifest("ffpp", tmp_path, methods=["Nope"])


def test_dfdc_metadata_groups_fakes_with_originals(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    for name in ("real.mp4", "fake1.mp4", "fake2.mp4"):
        touch(part / name)
    (part / "metadata.json").write_text(json.dumps({
        "real.mp4": {"label": "REAL", "split": "train"},
        "fake1.mp4": {"label": "FAKE", "split": "train", "original": "real.mp4"},
        "fake2.mp4": {"label": "FAKE", "split": "train", "original": "real.mp4"},
        "absent.mp4": {"label": "FAKE", "split": "train", "original": "real.mp4"},
    }))
    touch(tmp_path / "test" / "t1.mp4")
    (tmp_path / "labels.csv").write_text("filename,label\nt1.mp4,1\n")
    rows = manifest("dfdc", tmp_path)
    assert sorted((Path(r.path).name, r.label) for r in rows) == [("fake1.mp4", 1), ("fake2.mp4", 1), ("real.mp4", 0), ("t1.mp4", 1)]
    assert {r.group for r in rows if r.path.endswith(("real.mp4", "fake1.mp4", "fake2.mp4"))} == {"real"}
    assert [r.split for r in rows if r.path.endswith("t1.mp4")] == ["test"]
    assert_leak_free(rows)


def test_celebdf_test_list_and_identity_groups(tmp_path):
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-real/id1_0001.mp4", "YouTube-real/00001.mp4",
                "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0001.mp4"):
        touch(tmp_path / rel)
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id1_0001.mp4\n0 Celeb-synthesis/id1_id0_0001.mp4\n")
    rows = {Path(r.path).name: r for r in manifest("celebdf", tmp_path)}
    assert rows["id1_id0_0001.mp4"].split == "test" and rows["id1_id0_0001.mp4"].label == 1
    assert rows["id0_id1_0000.mp4"].group == rows["id0_0000.mp4"].group == "id0"
    assert rows["00001.mp4"].label == 0


def test_folder_with_split_subfolders_and_group_regex(tmp_path):
    touch(tmp_path / "train/real/abc_0.jpg")
    touch(tmp_path / "train/real/abc_1.jpg")
    touch(tmp_path / "valid/fake/xyz_qqq_0.jpg")
    touch(tmp_path / "test/fake/nested/k_1.png")
    rows = manifest("folder", tmp_path, group_regex=r"^([a-z]+)")
    assert sorted((r.split, r.label, r.group) for r in rows) == [
        ("test", 1, "k"), ("train", 0, "abc"), ("train", 0, "abc"), ("val", 1, "xyz")]


def test_csv_manifest_accepts_shared_label_words(tmp_path):
    touch(tmp_path / "media/a.wav")
    touch(tmp_path / "media/b.wav")
    (tmp_path / "labels.csv").write_text("path,label,source\nmedia/a.wav,bonafide,x\nmedia/b.wav,spoof,y\n")
    rows = manifest("csv", tmp_path / "labels.csv")
    assert [(Path(r.path).name, r.label, r.source) for r in rows] == [("a.wav", 0, "x"), ("b.wav", 1, "y")]
    assert_leak_free(rows)


def test_parse_label():
    assert [parse_label(v) for v in ("real", "bona-fide", "0", "FAKE", "spoof", "1")] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        parse_label("maybe")


def test_shared_video_through_the_adapters(shared_data):
    ffpp = manifest("ffpp", shared_data / "video" / "ffpp")
    assert sorted(r.label for r in ffpp) == [0, 0, 0, 1, 1, 1, 1]
    assert_leak_free(ffpp)
    assert len(manifest("dfdc", shared_data / "video" / "dfdc")) == 3
    crops = manifest("folder", shared_data / "crops", group_regex=r"^([a-z]+)")
    assert len(crops) == 166 and {r.split for r in crops} == set(SPLITS)
