"""Shared fixtures: sample media generated in code, and ../shared/data where it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector import samples

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(items):
    for item in items:  # tier marks by folder
        for tier in ("unit", "integration"):
            if f"/tests/{tier}/" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: real media live beside the checkout, not in it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """One of each supported format, built from scikit-image's photos."""
    d = tmp_path_factory.mktemp("media")
    face = samples.astronaut()
    for ext in ("jpg", "png", "webp", "bmp", "gif"):
        samples.write_image(d / f"astronaut.{ext}", face)
    samples.write_image(d / "coffee.png", samples.no_face())
    for ext in samples.CONTAINER_CODECS:
        samples.write_video(d / f"pan.{ext}", samples.moving_crop(face, 40), audio=samples.chirp(1.6))
    samples.write_video(d / "silent.mp4", samples.moving_crop(face, 40))
    samples.write_video(d / "coffee.mp4", samples.moving_crop(samples.no_face(), 20))
    for ext in samples.AUDIO_CODECS:
        samples.write_audio(d / f"chirp.{ext}", samples.chirp(2.0))
    return d


@pytest.fixture(scope="session")
def detector():
    from detector.faces import FaceDetector

    return FaceDetector()

