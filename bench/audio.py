"""Audio scoring speed on CPU: seconds of audio scored per second, batched windows vs one at a time.

    .venv/bin/python bench/audio.py [--bundle out/bundles/audio_cpu_small] [--files 40]

Joins real speech from ../shared/data/audio into one long recording (as a long upload) and scores it
with the bundle's network (4 s windows, 2 s hop, voice gate) from 30 s chunks, once with 32 windows
per network call and once with one.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.frontend.audio import voiced_windows  # noqa: E402
from detector.bundle import load_bundle  # noqa: E402
from detector.frontend.media import load_audio  # noqa: E402

AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio"


@torch.inference_mode()
def score(net, meta, chunks, batch: int) -> list:
    """The windows' segments, the voiced ones scored `batch` windows per network call."""
    segs, xs = [], []
    for seg, x in voiced_windows(chunks, meta.audio):
        segs.append(seg)
        if x is not None:
            xs.append((seg, x))
    for i in range(0, len(xs), batch):
        probs = meta.calibration(net(torch.from_numpy(np.stack([x for _, x in xs[i : i + batch]]))).float().numpy())
        for (seg, _), p in zip(xs[i : i + batch], probs):
            seg.score = float(p)
    return segs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="out/bundles/audio_cpu_small")
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    if not AUDIO.is_dir():
        sys.exit(f"{AUDIO} is absent: this benchmark needs ../shared/data")
    net, meta = load_bundle(args.bundle)
    paths = [AUDIO / r["path"] for r in csv.DictReader((AUDIO / "labels.csv").open())][::3][: args.files]
    wave = np.concatenate([load_audio(p) for p in paths])
    seconds = len(wave) / meta.audio.sample_rate
    chunk = 30 * meta.audio.sample_rate
    torch.set_num_threads(2)
    score(net, meta, [wave[:chunk]], 32)  # warm-up: first calls are slower
    rates = {}
    for batch in (32, 1):
        start = time.perf_counter()
        segs = score(net, meta, (wave[i : i + chunk] for i in range(0, len(wave), chunk)), batch)
        took = time.perf_counter() - start
        rates[batch] = seconds / took
        scored = sum(s.score is not None for s in segs)
        print(f"{meta.family}, {batch:2d} windows per call: {seconds:.0f} s of audio ({len(segs)} windows, "
              f"{scored} voiced) in {took:.1f} s = {rates[batch]:.0f} s of audio per second")
    print(f"batched / one at a time: {rates[32] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
