"""Classifier throughput by batch size on this machine: does batching pay on CPU?

    .venv/bin/python bench/batch_size.py

Untrained timm networks (speed does not depend on weights), 4 s of forward passes per setting, in
PyTorch's default memory layout and in channels-last (what `load_bundle` gives visual models).
"""

from __future__ import annotations

import time

import timm
import torch


def main() -> None:
    for name, size in (("efficientnet_b0", 224), ("efficientnet_b4", 380)):
        for layout in (torch.contiguous_format, torch.channels_last):
            net = timm.create_model(name, pretrained=False, num_classes=1).eval().to(memory_format=layout)
            with torch.inference_mode():
                for bs in (1, 8, 32):
                    x = torch.randn(bs, 3, size, size).contiguous(memory_format=layout)
                    net(x)  # warm-up
                    start, n = time.perf_counter(), 0
                    while time.perf_counter() - start < 4:
                        net(x)
                        n += bs
                    print(f"{name} {size} px, {str(layout).removeprefix('torch.'):<17} batch {bs:>2}: "
                          f"{n / (time.perf_counter() - start):.1f} crops/s", flush=True)


if __name__ == "__main__":
    main()
