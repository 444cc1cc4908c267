"""Training throughput: the Lightning loop against a bare forward+backward loop, same model and batch.

    .venv/bin/python bench/train.py [--cache out/cache/dfdc_crops] [--backbone efficientnet_b0] [--steps 20]

Both loops read the same crop cache through the same DataModule (decode + augment in workers), so
the ratio is what Lightning and our module add. Also reports preprocessing frames/s: the face
front end writing a cache from the real clips of ../shared/data/video (32 frames each).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.training.cache import preprocess  # noqa: E402
from detector.datasets import manifest  # noqa: E402
from detector.training.visual_data import CropDataModule  # noqa: E402
from detector.training.visual_module import VisualDetector  # noqa: E402

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"


def bare_loop(module: VisualDetector, loader, steps: int) -> float:
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()
    seen, it = 0, iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        try:
            x, y, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, y, _ = next(it)
        loss = F.binary_cross_entropy_with_logits(module(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


class Rate(L.Callback):
    def on_train_start(self, trainer, module):
        self.start, self.seen = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.seen += len(batch[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="out/cache/dfdc_crops")
    ap.add_argument("--backbone", default="efficientnet_b0")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    dm = CropDataModule(args.cache, batch_size=args.batch, num_workers=2, crop_size=args.size, balance=False)
    dm.setup()
    module = VisualDetector(backbone=args.backbone, input_size=args.size)
    bare = bare_loop(module, dm.train_dataloader(), args.steps)
    rate = Rate()
    trainer = L.Trainer(max_steps=args.steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[rate], accelerator="cpu")
    trainer.fit(VisualDetector(backbone=args.backbone, input_size=args.size), datamodule=dm)
    lit = rate.seen / (time.perf_counter() - rate.start)
    print(f"{args.backbone} {args.size}px batch {args.batch}, {args.steps} steps: bare loop {bare:.1f} samples/s, "
          f"Lightning {lit:.1f} samples/s ({lit / bare:.2f}x)")
    if VIDEO.is_dir():
        rows = manifest("csv", VIDEO / "labels.csv")
        tmp = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        preprocess(rows, tmp / "cache")
        took = time.perf_counter() - start
        print(f"preprocess: {len(rows)} clips x 32 frames in {took:.1f} s = {len(rows) * 32 / took:.1f} frames/s "
              f"(2 decoding threads, both cores)")
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
