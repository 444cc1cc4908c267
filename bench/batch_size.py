"""Classifier throughput by batch size on this machine: does batching pay on CPU?

    .venv/bin/python bench/batch_size.py

Untrained timm networks (speed does not depend on weights), 4 s of forward passes per setting.
"""

from __future__ import annotations

import time

import timm
import torch


def main() -> None:
    for name, size in (("efficientnet_b0", 224), ("efficientnet_b4", 380)):
        net = timm.create_model(name, pretrained=False, num_classes=1).eval()
        with torch.inference_mode():
            for bs in (1, 8, 32):
                x = torch.randn(bs, 3, size, size)
                net(x)  # warm-up
                start, n = time.perf_counter(), 0
                while time.perf_counter() - start < 4:
                    net(x)
                    n += bs
                print(f"{name} {size} px, batch {bs:>2}: {n / (time.perf_counter() - start):.1f} crops/s", flush=True)


if __name__ == "__main__":
    main()
