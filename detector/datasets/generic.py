r"""Your own data: a folder with `real/` and `fake/` (optionally under train/val/test), or a CSV.

    ROOT/[train|val|valid|test/]{real,fake}/...   any media files, recursively
    ROOT.csv  with columns path,label[,split,group,source]; path relative to the CSV's folder;
              label real/bonafide/0 or fake/spoof/1, so `../shared/data/*/labels.csv` work as is

`group_regex` takes the group id (its first capture group) from a file name in a folder, or from
the path as written in a CSV (so `universal_melgan/[^/]+/(.+)\.wav` groups one sentence across
vocoders); without it the group is the file's stem. `source_regex` does the same for the source
(e.g. the vocoder), which is otherwise the CSV's `source` column or the CSV's name. Rows without a
split get one from their group.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

from detector.datasets import Row, hash_split, parse_label, register

_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _group(text: str, stem: str, group_regex: str | None) -> str:
    m = re.search(group_regex, text) if group_regex else None
    return m.group(1) if m else stem


@register("folder")
def folder(root: Path, group_regex: str | None = None) -> Iterator[Row]:
    tops = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _SPLIT_NAMES]
    for top, split in [(d, _SPLIT_NAMES[d.name.lower()]) for d in tops] or [(root, None)]:
        for label_name, label in (("real", 0), ("fake", 1)):
            for p in sorted((top / label_name).rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    group = _group(p.name, p.stem, group_regex)
                    yield Row(str(p.resolve()), label, split or hash_split(group), group, f"folder/{label_name}")


@register("csv")
def csv_manifest(root: Path, group_regex: str | None = None, source_regex: str | None = None,
                 include: str | None = None) -> Iterator[Row]:
    """`include`: keep only rows whose path matches this regular expression."""
    with root.open(newline="") as f:
        for rec in csv.DictReader(f):
            if "path" not in rec or "label" not in rec:
                raise ValueError(f"{root}: needs at least the columns path,label")
            if include and not re.search(include, rec["path"]):
                continue
            p = (root.parent / rec["path"]).resolve()
            group = rec.get("group") or _group(rec["path"], p.stem, group_regex)
            split = _SPLIT_NAMES.get((rec.get("split") or "").lower()) or hash_split(group)
            source = _group(rec["path"], rec.get("source") or root.stem, source_regex)
            yield Row(str(p), parse_label(rec["label"]), split, group, source)
