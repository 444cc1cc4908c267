"""Whisper tiny's top two encoder blocks fine-tuned at full frame rate, with fresh random windows and the
training augmentation (codecs, phone band, noise, gain) in every epoch, leave-one-source-out as the voice
recipe scores (a file: the mean of its voiced 4 s windows). A GPU job: each window runs the whole encoder
in every epoch (on 2 CPU cores about 3 minutes an epoch a fold; on one H100 seconds).

    .venv/bin/python bench/voice_whisper_finetune.py [--epochs 3] [--folds SOURCE ...] [--limit N]

`--limit N`: N files of each source and class (a smoke run). Needs the `[foundations]` extra (Whisper's weights).
Writes out/voice_whisper_finetune/loso.md and prints the mean EER to set beside the shipped 0.292.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from detector.foundations.whisper import whisper_tiny_encoder  # noqa: E402
from detector.frontend.audio import voiced_windows  # noqa: E402
from detector.frontend.media import MediaError, load_audio  # noqa: E402
from detector.metrics import by_video  # noqa: E402
from detector.recipes import voice  # noqa: E402
from detector.recipes.loso import held_out_row, write_table  # noqa: E402
from detector.training.audio_data import augment, fit_length  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


class TopBlocks(nn.Module):
    """Whisper's conv stem and first two blocks frozen; the last two, the final norm and a head trained."""

    def __init__(self):
        super().__init__()
        self.whisper = whisper_tiny_encoder()
        self.whisper.requires_grad_(False)
        for part in (*self.whisper.blocks[2:], self.whisper.norm):
            part.requires_grad_(True)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * 384, 1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave / (wave.pow(2).mean(1, keepdim=True).sqrt() + 1e-8) * 10 ** (-30 / 20)  # as voice_probe
        with torch.no_grad():
            x = self.whisper(wave, depth=2)[-1]
        for block in self.whisper.blocks[2:]:
            x = block(x)
        x = self.whisper.norm(x)
        return self.head(torch.cat([x.mean(1), x.std(1)], 1)).squeeze(1)


def windows_of(files: list[int], waves: dict, labels: dict, vocoded: dict, rng, per_file: int):
    """One epoch's training windows: `per_file` a file, as the voice recipe draws them, and a bona fide
    file's self-vocoded windows as spoofs; (waves, labels, cells)."""
    xs, ys, cells = [], [], []
    for i in files:
        for w in voice.training_windows(waves[i], per_file, rng):
            xs.append(w)
            ys.append(labels[i][0]), cells.append(f"{labels[i][1]}|{labels[i][0]}|False")
        for w in vocoded.get(i, []):
            xs.append(augment(w, rng) if rng.random() < 0.5 else w)
            ys.append(1), cells.append(f"{labels[i][1]}|1|True")
    return np.stack(xs), np.array(ys, np.float32), np.array(cells)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "voice_whisper_finetune")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4, help="the two blocks' (the head's: 1e-3)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--folds", nargs="*", help="held-out sources (default: every one)")
    p.add_argument("--limit", type=int, help="files of each source and class (a smoke run)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    rng = np.random.default_rng(0)

    rows, kept = voice.corpus(args.data), {}
    for path, label, source in rows:
        if args.limit is None or sum(v == (label, source) for v in kept.values()) < args.limit:
            kept[path] = (label, source)
    waves, labels, vocoded, scored = {}, {}, {}, {}
    for i, (path, (label, source)) in enumerate(kept.items()):
        try:
            waves[i] = load_audio(path)
        except MediaError as e:
            print(f"  skipped {path}: {e}", flush=True)
            continue
        labels[i] = (label, source)
        if label == 0:  # two self-vocoded spoofs a bona fide file, made once (Griffin-Lim is slow)
            vocoded[i] = [voice.self_vocode(fit_length(waves[i], voice.WINDOW), rng) for _ in range(2)]
        scored[i] = [x for _, x in voiced_windows([waves[i]], voice.AUDIO) if x is not None]
    sources = sorted({s for _, s in labels.values()})
    print(f"{len(waves)} files of {len(sources)} sources on {args.device}", flush=True)

    table, started = [], time.monotonic()
    for name in args.folds or sources:
        test = [i for i in labels if labels[i][1] == name and scored[i]]
        if len({labels[i][0] for i in test}) < 2:
            continue  # a page of one class has no EER of its own
        train = [i for i in labels if labels[i][1] != name]
        torch.manual_seed(0)
        model = TopBlocks().to(args.device)
        opt = torch.optim.AdamW([{"params": [q for q in model.whisper.parameters() if q.requires_grad], "lr": args.lr},
                                 {"params": model.head.parameters(), "lr": 1e-3}], weight_decay=0.05)
        for _ in range(args.epochs):
            x, y, cells = windows_of(train, waves, labels, vocoded, rng, per_file=4)
            _, cell, counts = np.unique(cells, return_inverse=True, return_counts=True)
            weight = torch.tensor(1.0 / counts[cell], dtype=torch.float32)
            weight = weight / weight.mean()  # every (source, label, vocoded) cell weighs the same
            model.train()
            for idx in torch.randperm(len(y)).split(args.batch):
                with torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.device != "cpu"):
                    logits = model(torch.from_numpy(x[idx.numpy()]).to(args.device)).float()
                loss = (nn.functional.binary_cross_entropy_with_logits(
                    logits, torch.from_numpy(y[idx.numpy()]).to(args.device), reduction="none")
                    * weight[idx].to(args.device)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        probs, ys, items = [], [], []
        with torch.no_grad():
            for i in test:
                batch = torch.from_numpy(np.stack(scored[i])).to(args.device)
                probs += torch.sigmoid(model(batch).float()).cpu().tolist()
                ys += [labels[i][0]] * len(scored[i])
                items += [i] * len(scored[i])
        s, lab, its = by_video(probs, ys, items)
        table.append(held_out_row(name, lab, s, its))
        print(f"  {name}: AUC {table[-1]['auc']:.3f} EER {table[-1]['eer']:.3f} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    path = write_table(args.out, table, "files")
    print(path.read_text(), flush=True)


if __name__ == "__main__":
    main()
