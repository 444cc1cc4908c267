"""bench/gpu_check.sh on a machine without CUDA (its CUDA tests and rows skipped, the rest measured, a
failed part fails it) and bench/gpu_prep.sh's refusal to pack what could not travel."""

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
    r = _gpu_check(tmp_path, "--clips", str(clip), "--frames", "4", "--workers", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", (tmp_path / "out" / "gpu_check.md").read_text(), re.M))
    assert rows["device"].startswith("CPU only")
    assert rows["classifier crops/s, batch 1/8/32/64, fp32 and AMP"] == "skipped: no CUDA device"
    (scorer,) = [v for k, v in rows.items() if k.startswith("Scorer end to end, frames/s (3 clips x 4 frames")]
    assert float(scorer) > 0
    assert re.fullmatch(r"3 skipped in [\d.]+s", rows["CUDA tests (tests/integration/test_cuda.py)"])


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs for real (minutes)")
def test_gpu_check_fails_when_a_part_fails(tmp_path):
    r = _gpu_check(tmp_path, "--clips", str(tmp_path / "missing.mp4"))
    assert r.returncode == 1
    assert "FAILED: bench/gpu.py" in r.stderr
    assert "| pipeline: FAILED |" in (tmp_path / "out" / "gpu_check.md").read_text()


def test_gpu_prep_refuses_a_folder_that_could_not_travel(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_prep.sh"), str(tmp_path / "gpu")], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "GPU_PREP_LIMIT_MIB": "1"})
    assert r.returncode == 1
    assert re.search(r"too big to travel: working tree \d+ MiB \+ \S+ 0 MiB > 1 MiB", r.stderr), r.stderr
    assert not (tmp_path / "gpu").exists()  # refused before downloading or writing anything


def _gpu_check(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path / "out"), *options, "--no-load"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PY": sys.executable})
