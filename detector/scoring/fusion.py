"""Fusion of the visual and audio scores into one upload score and decision.

- `max`: each modality decides with its own bundle's thresholds; the most severe decision wins.
- `weighted`: a weighted mean of the modalities present, decided with the fusion's thresholds.
- `logistic`: sigmoid(bias + sum over present modalities of weight * logit(score) + offset),
  fitted on validation Verdicts with `fit_fusion`; a missing modality adds nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression

from detector.bundle import Thresholds
from detector.metrics import binary_report, threshold_at_fpr

MODALITIES = ("visual", "audio")
SEVERITY = {"no_signal": 0, "clear": 1, "review": 2, "likely_fake": 3}


def decide(score: float | None, t: Thresholds) -> str:
    if score is None:
        return "no_signal"
    return "likely_fake" if score >= t.likely_fake else "review" if score >= t.review else "clear"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


class Fusion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Literal["max", "weighted", "logistic"] = Field("max", validation_alias=AliasChoices("rule", "kind"))
    weights: dict[str, float] = {"visual": 1.0, "audio": 1.0}
    offsets: dict[str, float] = {"visual": 0.0, "audio": 0.0}  # logistic: a modality's presence
    bias: float = 0.0
    thresholds: Thresholds = Thresholds()  # weighted and logistic: on the fused score
    fitted_on: dict = {}  # logistic: how many validation uploads, and the fused score's metrics there

    def fuse(self, scores: dict[str, float | None], own: dict[str, Thresholds]) -> tuple[float | None, str]:
        """(score, decision) from the modalities' calibrated scores; None means not scored."""
        present = {m: s for m, s in scores.items() if s is not None}
        if not present:
            return None, "no_signal"
        if self.rule == "max":
            return max(((s, decide(s, own[m])) for m, s in present.items()), key=lambda d: (SEVERITY[d[1]], d[0]))
        if self.rule == "weighted":
            w = {m: self.weights.get(m, 1.0) for m in present}
            score = sum(w[m] * s for m, s in present.items()) / max(sum(w.values()), 1e-9)
        else:
            z = self.bias + sum(self.weights.get(m, 1.0) * _logit(s) + self.offsets.get(m, 0.0)
                                for m, s in present.items())
            score = float(1 / (1 + np.exp(-z)))
        return score, decide(score, self.thresholds)


def _features(scores: dict[str, float | None]) -> list[float]:
    return [v for m in MODALITIES for v in ((_logit(scores[m]), 1.0) if scores.get(m) is not None else (0.0, 0.0))]


def fit_fusion(scores: list[dict[str, float | None]], labels: list[int], fpr: float = 0.01,
               review_fpr: float = 0.1) -> Fusion:
    """A logistic fusion fitted on validation uploads' modality scores, thresholds at `fpr`/`review_fpr`."""
    keep = [i for i, s in enumerate(scores) if any(v is not None for v in s.values())]  # no_signal: nothing to fuse
    scores, y = [scores[i] for i in keep], np.asarray(labels, int)[keep]
    if len(np.unique(y)) < 2:
        raise ValueError("fitting a fusion needs real and fake uploads with a score")
    lr = LogisticRegression(C=10.0).fit(np.array([_features(s) for s in scores]), y)
    coef = lr.coef_[0]
    fusion = Fusion(rule="logistic", bias=float(lr.intercept_[0]),
                    weights={m: float(coef[2 * i]) for i, m in enumerate(MODALITIES)},
                    offsets={m: float(coef[2 * i + 1]) for i, m in enumerate(MODALITIES)})
    fused = [fusion.fuse(s, {})[0] for s in scores]
    t = Thresholds(likely_fake=threshold_at_fpr(y, fused, fpr), review=threshold_at_fpr(y, fused, review_fpr))
    return fusion.model_copy(update={"thresholds": t, "fitted_on": {
        "uploads": len(fused), "fpr": fpr, "review_fpr": review_fpr, "report": binary_report(y, fused, t.likely_fake)}})
