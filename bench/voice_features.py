"""Which features and regularisation the voice recipe uses: leave-one-source-out mean EER per choice.

    .venv/bin/python bench/voice_features.py [--data ../shared/data]

Every feature of `voice_probe` is computed once, on the recipe's windows (detector/recipes/voice.py
`features`: training windows with their augmentation and self-vocoded spoofs, and the windows
scoring reads); then, per feature set and C, a head is fitted without each source and its files
are scored as `score` scores them (the mean of their voiced windows' probabilities). One line per
choice: mean AUC and EER over the sources with both classes, the worst source's EER, and each
source's EER. The shipped recipe is the line this table put first; picking it here makes its
mean somewhat optimistic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.metrics import binary_report, by_video  # noqa: E402
from detector.models import create_model  # noqa: E402
from detector.models.voice_probe import FEATURES  # noqa: E402
from detector.recipes import voice  # noqa: E402

CHOICES = [("hstats", "bands", "mel"), ("whisper_mid",), ("whisper_top",), ("whisper_mid", "whisper_top"),
           ("whisper_mid", "bands", "mel"), ("whisper_mid", "hstats", "bands", "mel"),
           ("whisper_mid", "whisper_top", "hstats", "bands", "mel")]
CS = (0.0003, 0.001, 0.003)


def table(f: dict, columns: dict[str, slice], feats: tuple[str, ...], C: float) -> dict[str, float]:
    """EER per held-out source with both classes, and the mean AUC."""
    X = np.concatenate([f["X"][:, columns[k]] for k in feats], 1)
    cells = voice.cells_of(f)
    eers, aucs = {}, []
    for name in sorted(set(f["source"])):
        train, test = (f["source"] != name) & ~f["scored"], (f["source"] == name) & f["scored"]
        scaler, head = voice.fit_logistic(X[train], f["y"][train], cells[train], C)
        probs = head.predict_proba(scaler.transform(X[test]))[:, 1]
        scores, labels, _ = by_video(probs, f["y"][test], f["item"][test])
        r = binary_report(labels, scores)
        if r["auc"] is not None:
            eers[name] = r["eer"]
            aucs.append(r["auc"])
    return {"auc": float(np.mean(aucs)), "eer": float(np.mean(list(eers.values())))} | eers


def columns_of(names: tuple[str, ...]) -> dict[str, slice]:
    """Where each feature group sits in the columns of `features`' X for a `voice_probe` of `names`."""
    offsets = np.cumsum([0] + [FEATURES[k] for k in names])
    return {k: slice(a, b) for k, a, b in zip(names, offsets[:-1], offsets[1:])}


def line(label: str, t: dict[str, float], C: float) -> str:
    """One choice's line: mean AUC and EER, the worst source's EER, each source's EER."""
    per = {k: v for k, v in t.items() if k not in ("auc", "eer")}
    return (f"{label:44s} C={C:<6} AUC {t['auc']:.3f} EER {t['eer']:.3f} worst {max(per.values()):.3f}  "
            + " ".join(f"{k[:8]} {v:.2f}" for k, v in per.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data} is absent: this benchmark needs ../shared/data")
    names = tuple(FEATURES)
    net = create_model("voice_probe", features=names).eval()
    voice.load_pretrained(net)
    rows = voice.corpus(args.data)
    print(f"features of {len(rows)} files", flush=True)
    f = voice.features(net, rows, voice.RECIPE["windows"])
    columns = columns_of(names)
    lines = []
    for feats in CHOICES:
        for C in CS:
            t = table(f, columns, feats, C)
            lines.append((t["eer"], line("+".join(feats), t, C)))
            print(lines[-1][1], flush=True)
    print("\nbest first:")
    for _, line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main()
