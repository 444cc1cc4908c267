"""FaceForensics++ in its official layout.

    ROOT/original_sequences/youtube/<c>/videos/<id>.mp4
    ROOT/manipulated_sequences/<Method>/<c>/videos/<target>_<source>.mp4
    ROOT/splits/{train,val,test}.json   (optional: lists of [target, source] pairs)

A fake and both videos of its pair share a group, so no identity straddles two splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from detector.datasets import Row, hash_split, register

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")


@register("ffpp")
def ffpp(root: Path, compression: str = "c23", methods: Sequence[str] = METHODS[:4],
         splits_dir: str | None = None) -> Iterator[Row]:
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown FF++ methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    pair_split = _official_splits(Path(splits_dir) if splits_dir else root / "splits")
    fakes = []
    for method in methods:
        folder = root / "manipulated_sequences" / method / compression / "videos"
        fakes += [(method, p) for p in sorted(folder.glob("*.mp4"))]
    pair_of: dict[str, str] = {}
    for _, p in fakes:
        a, _, b = p.stem.partition("_")
        pair_of[a] = pair_of[b] = "_".join(sorted((a, b)))

    def split(group: str) -> str:
        return pair_split.get(group) or hash_split(group)

    for p in sorted((root / "original_sequences" / "youtube" / compression / "videos").glob("*.mp4")):
        group = pair_of.get(p.stem, p.stem)
        yield Row(str(p.resolve()), 0, split(group), group, "ffpp/original")
    for method, p in fakes:
        a, _, b = p.stem.partition("_")
        group = "_".join(sorted((a, b)))
        yield Row(str(p.resolve()), 1, split(group), group, f"ffpp/{method}")


def _official_splits(folder: Path) -> dict[str, str]:
    out = {}
    for name in ("train", "val", "test"):
        f = folder / f"{name}.json"
        if f.is_file():
            out |= {"_".join(sorted(pair)): name for pair in json.loads(f.read_text())}
    return out
