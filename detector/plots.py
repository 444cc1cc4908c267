"""Evaluation figures a person reads, written beside report.json: the ROC (log false-positive axis,
AUC in the legend, the bundle's operating points marked), a DET curve for voice models (the
ASVspoof convention: normal-deviate axes, EER marked), a reliability diagram and score histograms
per class. `curves` maps a level's name (frames, videos...) to its (labels, scores)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import det_curve, roc_auc_score, roc_curve  # noqa: E402

from detector.metrics import eer  # noqa: E402 - one EER definition for figures and reports

Curves = dict[str, tuple]


def _both_classes(curves: Curves) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, (y, s) in curves.items():
        y, s = np.asarray(y, int), np.asarray(s, float)
        if 0 < y.sum() < len(y):
            out[name] = (y, s)
    return out


def roc_figure(curves: Curves, thresholds: dict[str, float]):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    both = _both_classes(curves)
    # the axis floor: half the smallest step the real items allow (4 of them: steps of 0.25)
    floor = 0.5 / max([1, *(np.sum(y == 0) for y, _ in both.values())])
    for i, (name, (y, s)) in enumerate(both.items()):
        fpr, tpr, _ = roc_curve(y, s)
        line, = ax.plot(np.maximum(fpr, floor), tpr, label=f"{name}: AUC {roc_auc_score(y, s):.3f} (n={len(y)})")
        for (point, t), marker in zip(thresholds.items(), "os^"):
            at_fpr, at_tpr = max(np.mean(s[y == 0] >= t), floor), np.mean(s[y == 1] >= t)
            ax.plot(at_fpr, at_tpr, marker, color=line.get_color(), mfc="white", ms=7,
                    label=f"{point} ≥ {t:.3g}" if i == 0 else None)
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, "k:", lw=0.8, label="chance")
    ax.set(xscale="log", xlim=(floor / 1.6, 1.05), ylim=(-0.02, 1.03), ylabel="true positive rate", title="ROC",
           xlabel=f"false positive rate (log; none is drawn at {floor:.2g})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def det_figure(curves: Curves):
    fig, ax = plt.subplots(figsize=(5, 5))
    ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    clip = lambda p: norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))  # noqa: E731
    for name, (y, s) in _both_classes(curves).items():
        fpr, fnr, _ = det_curve(y, s)
        rate = eer(y, s)  # as report.json has it
        line, = ax.plot(clip(fpr), clip(fnr), label=f"{name}: EER {rate:.1%} (n={len(y)})")
        ax.plot(clip(rate), clip(rate), "o", color=line.get_color(), mfc="white")
    ax.plot(clip(ticks), clip(ticks), "k:", lw=0.8)
    labels = [f"{t:.1%}".replace(".0%", "%") for t in ticks]
    ax.set(xticks=clip(ticks), xticklabels=labels, yticks=clip(ticks), yticklabels=labels,
           xlim=clip([ticks[0], 0.5]), ylim=clip([ticks[0], 0.5]), title="DET (spoof = positive)",
           xlabel="false alarm rate (bona fide called spoof)", ylabel="miss rate (spoof accepted)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def reliability_figure(curves: Curves, bins: int = 10):
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5, 5.5), height_ratios=[3, 1], sharex=True)
    for name, (y, s) in _both_classes(curves).items():
        frac, mean = calibration_curve(y, s, n_bins=bins, strategy="uniform")
        which = np.clip((s * bins).astype(int), 0, bins - 1)
        ece = sum(abs(y[which == b].mean() - s[which == b].mean()) * (which == b).mean()
                  for b in range(bins) if (which == b).any())
        line, = ax.plot(mean, frac, "o-", label=f"{name}: ECE {ece:.3f}")
        counts.hist(s, bins=bins, range=(0, 1), histtype="step", color=line.get_color())
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfectly calibrated")
    ax.set(ylim=(0, 1), ylabel="fraction fake", title="Reliability")
    ax.legend(loc="upper left", fontsize=8)
    counts.set(xlim=(0, 1), xlabel="predicted probability of fake", ylabel="count")  # plain counts, no 2x10^0
    return fig


def histogram_figure(curves: Curves, thresholds: dict[str, float]):
    levels = {k: (np.asarray(y, int), np.asarray(s, float)) for k, (y, s) in curves.items() if len(y)}
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 3.8), squeeze=False)
    for ax, (name, (y, s)) in zip(axes[0], levels.items()):
        # bins over where the scores and thresholds lie, so that close scores do not share one bar
        lo, hi = min(s.min(), *thresholds.values()), max(s.max(), *thresholds.values())
        pad = max(0.02, 0.05 * (hi - lo))
        edges = np.linspace(max(0.0, lo - pad), min(1.0, hi + pad), 31)
        for label, cls, colour in (("real", 0, "tab:blue"), ("fake", 1, "tab:orange")):
            ax.hist(s[y == cls], bins=edges, alpha=0.55, color=colour, label=f"{label} (n={np.sum(y == cls)})")
        for (point, t), style in zip(thresholds.items(), ("--", ":")):
            ax.axvline(t, color="k", ls=style, lw=1, label=f"{point} {t:.3g}")
        ax.set(xlim=(edges[0], edges[-1]), xlabel="score", ylabel="count", title=f"Scores per class: {name}")
        ax.legend(fontsize=8)
    return fig


def write_plots(out: str | Path, modality: str, curves: Curves, thresholds: dict[str, float]) -> dict[str, str]:
    """Save the figures as PNGs in `out`; returns {figure: file name} for report.json."""
    figures = {"roc": roc_figure(curves, thresholds), "reliability": reliability_figure(curves),
               "histograms": histogram_figure(curves, thresholds)}
    if modality == "audio":
        figures["det"] = det_figure(curves)
    names = {}
    for name, fig in figures.items():
        fig.tight_layout()
        fig.savefig(Path(out) / f"{name}.png", dpi=110)
        plt.close(fig)
        names[name] = f"{name}.png"
    return names
