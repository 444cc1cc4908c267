"""Detection metrics as the field reports them (DeepfakeBench, ASVspoof), on scikit-learn."""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve


def eer(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Equal error rate, as the ASVspoof evaluation package computes it: at the threshold where the
    false-acceptance and false-rejection rates are closest, their mean."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def threshold_at_fpr(labels: Sequence[int], scores: Sequence[float], fpr: float) -> float:
    """The lowest threshold whose false-positive rate on `labels == 0` stays within `fpr`."""
    neg = np.sort(np.asarray(scores, np.float64)[np.asarray(labels) == 0])[::-1]
    if not len(neg):
        return 0.5
    allowed = int(np.floor(fpr * len(neg)))  # negatives that may score at or above the threshold
    return float(np.nextafter(neg[allowed], np.inf)) if allowed < len(neg) else float(neg[-1])


def by_video(scores: Sequence[float], labels: Sequence[int], videos: Sequence[Hashable]):
    """Mean score and label per video, in first-seen order."""
    acc: dict = defaultdict(list)
    lab: dict = {}
    for s, y, v in zip(scores, labels, videos):
        acc[v].append(s)
        lab[v] = y
    keys = list(acc)
    return np.array([np.mean(acc[k]) for k in keys]), np.array([lab[k] for k in keys]), keys


def by_upload(scores: Sequence[float], labels: Sequence[int], videos: Sequence[Hashable], tracks: Sequence[Hashable]):
    """Score and label per video as the Scorer decides: the highest of its face tracks' mean scores."""
    means, track_labels, keys = by_video(scores, labels, list(zip(videos, tracks)))
    best, lab = {}, {}
    for s, y, (v, _) in zip(means, track_labels, keys):
        best[v], lab[v] = max(best.get(v, -np.inf), s), y
    return np.array(list(best.values())), np.array([lab[v] for v in best]), list(best)


def binary_report(labels: Sequence[int], probs: Sequence[float], threshold: float | None = None) -> dict:
    """AUC, AP, EER, log-loss, and accuracy/TPR/FPR at `threshold`, with counts. Needs both classes
    for the ranking metrics; they are None otherwise."""
    y, p = np.asarray(labels, int), np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    out = {
        "n": int(len(y)), "n_fake": int(y.sum()), "n_real": int(len(y) - y.sum()),
        "auc": float(roc_auc_score(y, p)) if both else None,
        "ap": float(average_precision_score(y, p)) if both else None,
        "eer": eer(y, p) if both else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
    }
    if threshold is not None and len(y):
        pred = p >= threshold
        out |= {
            "threshold": float(threshold),
            "accuracy": float((pred == y).mean()),
            "tpr": float(pred[y == 1].mean()) if y.sum() else None,
            "fpr": float(pred[y == 0].mean()) if (y == 0).any() else None,
        }
    return out


def bootstrap_ci(labels: Sequence[int], scores: Sequence[float], groups: Sequence[Hashable],
                 n: int = 1000, seed: int = 0) -> dict[str, list[float] | None]:
    """95% intervals of AUC and EER, resampling whole groups (a video, a sentence) with replacement;
    scikit-learn has no grouped bootstrap."""
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


def report_with_ci(labels: Sequence[int], scores: Sequence[float], groups: Sequence[Hashable],
                   threshold: float | None = None) -> dict:
    """`binary_report` with 95% intervals of AUC and EER over whole `groups` (None where one class is absent)."""
    r = binary_report(labels, scores, threshold)
    return r | (bootstrap_ci(labels, scores, groups) if r["auc"] is not None else {"auc_ci": None, "eer_ci": None})
