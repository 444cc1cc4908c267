"""Leave-one-source-out tables: per held-out source, counts, AUC and EER with bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from detector.metrics import report_with_ci


def held_out_row(source: str, labels: Sequence[int], scores: Sequence[float], groups: Sequence[Hashable]) -> dict:
    """One line of the table: what was held out, how many of each class, AUC and EER with intervals."""
    r = report_with_ci(labels, scores, groups)
    return {"held_out": source, "groups": len(set(groups))} | {
        k: r[k] for k in ("n_real", "n_fake", "auc", "eer", "auc_ci", "eer_ci")}


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
