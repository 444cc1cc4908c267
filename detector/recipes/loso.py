"""Leave-one-source-out tables: per held-out source, counts, AUC and EER with bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from detector.metrics import binary_report, eer


def bootstrap_ci(labels: Sequence[int], scores: Sequence[float], groups: Sequence[Hashable],
                 n: int = 1000, seed: int = 0) -> dict[str, list[float] | None]:
    """95% intervals of AUC and EER, resampling whole groups (a video, a sentence) with replacement;
    scikit-learn has no grouped bootstrap."""
    from sklearn.metrics import roc_auc_score

    y, s, g = np.asarray(labels), np.asarray(scores, np.float64), np.asarray(groups)
    keys = np.unique(g)
    members = [np.flatnonzero(g == k) for k in keys]
    rng = np.random.default_rng(seed)
    aucs, eers = [], []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(len(keys), size=len(keys))])
        if 0 < y[idx].sum() < len(idx):
            aucs.append(roc_auc_score(y[idx], s[idx]))
            eers.append(eer(y[idx], s[idx]))
    ci = lambda v: [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)] if v else None  # noqa: E731
    return {"auc_ci": ci(aucs), "eer_ci": ci(eers)}


def held_out_row(source: str, labels: Sequence[int], scores: Sequence[float], groups: Sequence[Hashable]) -> dict:
    """One line of the table: what was held out, how many of each class, AUC and EER with intervals."""
    r = binary_report(labels, scores)
    row = {"held_out": source, "n_real": r["n_real"], "n_fake": r["n_fake"], "groups": len(set(groups)),
           "auc": r["auc"], "eer": r["eer"]}
    return row | (bootstrap_ci(labels, scores, groups) if r["auc"] is not None else {"auc_ci": None, "eer_ci": None})


def markdown(rows: list[dict], unit: str) -> str:
    """The table as README and model cards show it, with a mean line."""
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    ci = lambda v: "-" if v is None else f"{v[0]:.2f}-{v[1]:.2f}"  # noqa: E731
    lines = [f"| held-out source | {unit} (real / fake) | AUC | 95% CI | EER | 95% CI |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['held_out']} | {r['n_real']} / {r['n_fake']} | {f(r['auc'])} | {ci(r['auc_ci'])} "
                     f"| {f(r['eer'])} | {ci(r['eer_ci'])} |")
    scored = [r for r in rows if r["auc"] is not None]
    if scored:
        lines.append(f"| **mean of {len(scored)}** | | {np.mean([r['auc'] for r in scored]):.3f} | "
                     f"| {np.mean([r['eer'] for r in scored]):.3f} | |")
    return "\n".join(lines)


def write_table(folder: str | Path, rows: list[dict], unit: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loso.json").write_text(json.dumps(rows, indent=2))
    (folder / "loso.md").write_text(markdown(rows, unit) + "\n")
    return folder / "loso.md"
