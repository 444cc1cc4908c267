"""Face-crop cache: the front end run once over a manifest, crops and their index kept on disk.

    CACHE/crops/<key>/t<track>_f<frame>.jpg   one JPEG per face per sampled frame
    CACHE/index.jsonl                         one line per crop: manifest row + frame, t, track, box,
                                              landmarks (crop pixels), prob
    CACHE/files.jsonl                         one line per input file: status ok | no_faces | error

A file's crops and index lines are written before its `files.jsonl` line, so a rerun skips what is
done and redoes what was cut off; readers take only crops of files listed there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from detector.config import FrontEndConfig
from detector.datasets import Row
from detector.frontend.scan import Scan, ScanSettings, scan_many
from detector.frontend.media import MediaError, read_image


def file_key(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:16]


def done_files(cache: Path) -> dict[str, dict]:
    """path -> its files.jsonl record, for files whose crops are complete."""
    f = cache / "files.jsonl"
    if not f.is_file():
        return {}
    out = {}
    for line in f.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a crash
        out[rec["path"]] = rec
    return out


def read_index(cache: str | Path) -> list[dict]:
    """Crop records of completed files (later duplicates from redone files win)."""
    cache = Path(cache)
    done = done_files(cache)
    by_crop: dict[str, dict] = {}
    index = cache / "index.jsonl"
    for line in index.read_text().splitlines() if index.is_file() else ():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec["path"] in done:
            by_crop[rec["crop"]] = rec
    return list(by_crop.values())


def _crop_landmarks(face, crop_size: int) -> list[list[float]]:
    x0, y0, x1, _ = face.crop_box
    scale = crop_size / (x1 - x0)
    return [[round(float((x - x0) * scale), 1), round(float((y - y0) * scale), 1)] for x, y in face.landmarks]


def _write_scan(cache: Path, row: Row, scan: Scan, crop_size: int, index) -> dict:
    key = file_key(row.path)
    folder = cache / "crops" / key
    n = 0
    for frame in scan.frames:
        for face in frame.faces:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"t{face.track}_f{frame.index:04d}.jpg"
            Image.fromarray(face.crop).save(folder / name, quality=95)
            index.write(json.dumps(asdict(row) | {
                "video": row.path, "crop": f"crops/{key}/{name}", "frame": frame.index, "t": round(frame.t, 3),
                "track": face.track, "box": [round(float(v), 1) for v in face.box],
                "landmarks": _crop_landmarks(face, crop_size), "prob": round(face.prob, 4)}) + "\n")
            n += 1
    return {"path": row.path, "key": key, "status": "ok" if n else "no_faces",
            "frames": len(scan.frames), "faces": n}


def _write_whole_image(cache: Path, row: Row, crop_size: int, cfg: FrontEndConfig, index) -> dict:
    """For datasets that ship face crops: the image itself is the crop, its group the video."""
    key = file_key(row.path)
    image = read_image(row.path, cfg.limits)
    (cache / "crops" / key).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).resize((crop_size, crop_size), Image.BILINEAR).save(cache / "crops" / key / "t0_f0000.jpg", quality=95)
    # a group may hold a real video and its fakes: the label keeps them apart as videos
    index.write(json.dumps(asdict(row) | {"video": f"{row.group}:{row.label}", "crop": f"crops/{key}/t0_f0000.jpg", "frame": 0, "t": 0.0, "track": 0,
                                          "box": None, "landmarks": None, "prob": None}) + "\n")
    return {"path": row.path, "key": key, "status": "ok", "frames": 1, "faces": 1}


def preprocess(rows: Iterable[Row], cache: str | Path, cfg: FrontEndConfig = FrontEndConfig(),
               workers: int = 2, crops_as_is: bool = False, progress=None) -> dict[str, int]:
    """Fill the cache for `rows`, skipping files already done; returns counts by status."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "frontend.json").write_text(cfg.model_dump_json(indent=2))  # how the crops were cut
    done = done_files(cache)
    todo = {r.path: r for r in rows if r.path not in done}
    counts = {"skipped": len(done), "ok": 0, "no_faces": 0, "error": 0}
    crop_size = cfg.faces.crop_size
    with open(cache / "index.jsonl", "a") as index, open(cache / "files.jsonl", "a") as files:

        def commit(rec: dict) -> None:
            index.flush()
            files.write(json.dumps(rec) + "\n")
            files.flush()
            counts[rec["status"]] += 1
            if progress:
                progress()

        if crops_as_is:
            for row in todo.values():
                try:
                    commit(_write_whole_image(cache, row, crop_size, cfg, index))
                except MediaError as e:
                    commit({"path": row.path, "status": "error", "error": f"{type(e).__name__}: {e}"})
            return counts
        settings = ScanSettings(limits=cfg.limits, sampling=cfg.sampling, faces=cfg.faces)
        for scan in scan_many(list(todo), settings, workers):
            row = todo[scan.path]
            if scan.error is not None:
                commit({"path": row.path, "status": "error", "error": f"{scan.error['type']}: {scan.error['message']}"})
            else:
                commit(_write_scan(cache, row, scan, crop_size, index))
    return counts


def crop_array(cache: str | Path, rec: dict) -> np.ndarray:
    return np.array(Image.open(Path(cache) / rec["crop"]).convert("RGB"))
