"""Media smaller than the smallest face looked for: valid, without a face, so `no_signal`."""

from __future__ import annotations

import numpy as np

from detector import samples
from detector.scoring.scorer import Scorer, Verdict


def test_tiny_images_and_videos_are_no_signal(bundles, tmp_path):
    rng = np.random.default_rng(0)
    paths = [samples.write_image(tmp_path / "tiny.jpg", rng.integers(0, 256, (16, 16, 3), np.uint8)),
             samples.write_image(tmp_path / "tiny.png", rng.integers(0, 256, (8, 8, 3), np.uint8)),
             samples.write_video(tmp_path / "tiny.mp4", rng.integers(0, 256, (10, 16, 16, 3), np.uint8))]
    out = {r.path: r for r in Scorer(bundles[0], None, device="cpu").score_many(paths)}
    for p in paths:
        assert isinstance(out[str(p)], Verdict), out[str(p)]
        assert out[str(p)].decision == "no_signal" and out[str(p)].visual.faces == []
