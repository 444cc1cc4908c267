"""Which deepfake-detector made a result: the installed distribution's version, or pyproject.toml's when
it runs from a source tree; and the time, as results and reports record both."""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@cache
def version() -> str:
    try:
        return metadata.version("deepfake-detector")
    except metadata.PackageNotFoundError:
        if not PYPROJECT.is_file():
            return "unknown (not installed)"
        return f"{tomllib.loads(PYPROJECT.read_text())['project']['version']} (source tree)"


def software() -> str:
    """What results name as their maker, e.g. `deepfake-detector 0.1.0`."""
    return f"deepfake-detector {version()}"


def utc_now() -> str:
    """Now, ISO 8601 in UTC to the second, as the API writes times."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
