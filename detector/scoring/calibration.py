"""Turn raw logits into probabilities that mean what they say, fitted on validation data."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, Field
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression


class Calibration(BaseModel):
    """prob = sigmoid(a * logit + b). Temperature scaling fits a = 1/T, b = 0; Platt fits both."""

    method: Literal["none", "temperature", "platt"] = Field("none", validation_alias=AliasChoices("method", "kind"))
    a: float = 1.0
    b: float = 0.0

    def __call__(self, logits) -> np.ndarray:
        z = self.a * np.asarray(logits, np.float64) + self.b
        return 1 / (1 + np.exp(-z))


def fit_calibration(logits, labels, method: str = "temperature") -> Calibration:
    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if method == "none" or len(np.unique(y)) < 2:
        return Calibration()
    if method == "platt":
        lr = LogisticRegression(C=1e4).fit(z[:, None], y)
        return Calibration(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))

    def nll(log_t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    t = float(np.exp(minimize_scalar(nll, bounds=(-4, 4), method="bounded").x))
    return Calibration(method="temperature", a=1 / t)
