"""Celeb-DF v2.

    ROOT/Celeb-real/id<A>_<NNNN>.mp4, ROOT/YouTube-real/<NNNNN>.mp4,
    ROOT/Celeb-synthesis/id<A>_id<B>_<NNNN>.mp4, ROOT/List_of_testing_videos.txt ("1 path": 1 = real)

Videos of one celebrity share a group (a fake goes with its target's identity); the official test
list is the test split, the rest is split by group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from detector.datasets import Row, hash_split, register


@register("celebdf")
def celebdf(root: Path) -> Iterator[Row]:
    listed = root / "List_of_testing_videos.txt"
    test = {line.split()[1] for line in listed.read_text().splitlines() if line.strip()} if listed.is_file() else set()
    for folder, label in (("Celeb-real", 0), ("YouTube-real", 0), ("Celeb-synthesis", 1)):
        for p in sorted((root / folder).glob("*.mp4")):
            group = p.stem.split("_")[0] if folder != "YouTube-real" else f"yt{p.stem}"
            rel = f"{folder}/{p.name}"
            split = "test" if rel in test else hash_split(group, val=0.15, test=0.0)
            yield Row(str(p.resolve()), label, split, group, f"celebdf/{folder}")
