"""DFDC: training parts with `metadata.json`, and the test set's `labels.csv`.

    ROOT/dfdc_train_part_N/metadata.json  {"x.mp4": {"label": "FAKE", "original": "y.mp4", ...}}
    ROOT/labels.csv                        (test set: filename,label with 1 = fake)

A fake shares its group with its original. Training parts all say "train", so train/val/test are
drawn by group; the test set's rows are "test".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from detector.datasets import Row, hash_split, parse_label, register


@register("dfdc")
def dfdc(root: Path) -> Iterator[Row]:
    for meta in sorted(root.rglob("metadata.json")):
        for name, entry in json.loads(meta.read_text()).items():
            path = meta.parent / name
            if not path.is_file():
                continue  # metadata lists the whole part; a partial copy holds fewer videos
            label = parse_label(entry["label"])
            group = Path(entry.get("original") or name).stem if label else Path(name).stem
            yield Row(str(path.resolve()), label, hash_split(group), group, f"dfdc/{meta.parent.name}")
    labels = root / "labels.csv"
    if labels.is_file():
        for row in csv.DictReader(labels.open()):
            path = root / "test" / row["filename"]
            if not path.is_file():
                path = root / row["filename"]
            if path.is_file():
                yield Row(str(path.resolve()), parse_label(row["label"]), "test", Path(row["filename"]).stem, "dfdc/test")
