"""bench/gpu_check.sh on a machine without CUDA: its CUDA tests and rows skipped, the rest measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector import samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs for real (minutes)")
def test_gpu_check_skips_its_cuda_parts_without_cuda(tmp_path):
    clip = samples.write_video(tmp_path / "pan.mp4", samples.moving_crop(samples.astronaut(), 16))
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path / "out"), "--clips", str(clip),
                        "--frames", "4", "--no-load"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PY": sys.executable})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", (tmp_path / "out" / "gpu_check.md").read_text(), re.M))
    assert rows["device"].startswith("CPU only")
    assert rows["classifier crops/s, batch 1/8/32/64, fp32 and AMP"] == "skipped: no CUDA device"
    assert float(rows["Scorer end to end, frames/s (1 clips x 4 frames)"]) > 0
    assert re.fullmatch(r"3 skipped in [\d.]+s", rows["CUDA tests (tests/integration/test_cuda.py)"])
