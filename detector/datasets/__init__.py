"""Dataset adapters: each turns a dataset's own layout into manifest rows (see `Row`).

A new dataset is one module here with a function decorated by `@register("name")`.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from detector.config import ConfigError

SPLITS = ("train", "val", "test")
_REGISTRY: dict[str, Callable[..., Iterator["Row"]]] = {}


@dataclass(frozen=True)
class Row:
    path: str  # absolute
    label: int  # 0 real / bona fide, 1 fake / spoof
    split: str  # train | val | test
    group: str  # video or speaker id: rows of one group never straddle splits
    source: str  # dataset/method, e.g. "ffpp/Deepfakes"


def register(name: str):
    def add(fn: Callable[..., Iterator[Row]]):
        _REGISTRY[name] = fn
        return fn

    return add


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def manifest(name: str, root: str | Path, **options) -> list[Row]:
    """All rows of dataset `name` found under `root` (options are the adapter's keywords)."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder or file for dataset {name!r}")
    takes = [p for p in inspect.signature(_REGISTRY[name]).parameters if p != "root"]
    if unknown := sorted(set(options) - set(takes)):
        raise ConfigError(f"dataset {name!r} takes no option {', '.join(unknown)}; it takes: {', '.join(takes) or 'none'}")
    return list(_REGISTRY[name](root, **options))


def hash_split(group: str, val: float = 0.1, test: float = 0.2, seed: str = "") -> str:
    """A stable split from the group id alone, for datasets that ship without split files."""
    x = int(hashlib.sha256(f"{seed}{group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if x < test else "val" if x < test + val else "train"


def parse_label(value: str) -> int:
    """0 for real/bonafide/bona-fide/0, 1 for fake/spoof/1."""
    v = str(value).strip().lower()
    if v in {"real", "bonafide", "bona-fide", "bona_fide", "genuine", "0", "original"}:
        return 0
    if v in {"fake", "spoof", "1", "synthetic", "manipulated"}:
        return 1
    raise ValueError(f"label {value!r} is neither real/bonafide/0 nor fake/spoof/1")


def _load_all() -> None:
    from detector.datasets import celebdf, dfdc, ffpp, generic, speech  # noqa: F401  (registers them)
