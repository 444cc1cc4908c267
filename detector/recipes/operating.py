"""Calibration and thresholds for a starter model, set on what it will meet: media of sources it
never saw. The held-out predictions of every leave-one-source-out fold are pooled, and
- calibration is Platt scaling on them, class-balanced (so 0.5 means "as likely fake as real")
  and with its slope bounded, so calibration neither collapses scores onto one value nor sharpens
  them into a wall of 0 and 1;
- `likely_fake` and `review` sit at 1% and 10% false positives among the held-out real items
  (videos, images or files), whose count is recorded beside them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np
from safetensors.torch import load_file, save
from sklearn.linear_model import LogisticRegression

from detector.bundle import BundleMeta, Thresholds
from detector.card import write_card
from detector.scoring.calibration import Calibration
from detector.metrics import binary_report, by_upload, by_video, threshold_at_fpr

SLOPE = (0.2, 2.0)  # bounds on the Platt slope: below, every score is ~0.5; above, a wall of 0 and 1


def fit_operating_point(logits: Sequence[float], labels: Sequence[int], groups: Sequence[Hashable],
                        fpr: float = 0.01, review_fpr: float = 0.1, tracks: Sequence[Hashable] | None = None) -> dict:
    """Calibration, thresholds and what set them, from pooled held-out predictions. An item's score is
    the mean of its calibrated predictions or, with `tracks` (face crops), the Scorer's: the highest
    of its tracks' means."""
    z, y = np.asarray(logits, np.float64), np.asarray(labels)
    lr = LogisticRegression(class_weight="balanced").fit(z[:, None], y)
    a = float(np.clip(lr.coef_[0, 0], *SLOPE))
    cal = Calibration(method="platt", a=a, b=float(lr.intercept_[0]))
    vs, vy, _ = by_video(cal(z), y, list(groups)) if tracks is None else by_upload(cal(z), y, list(groups), list(tracks))
    thresholds = Thresholds(likely_fake=threshold_at_fpr(vy, vs, fpr), review=threshold_at_fpr(vy, vs, review_fpr))
    n_real = int((vy == 0).sum())
    return {"calibration": cal, "thresholds": thresholds,
            "operating_point": {"likely_fake": f"{fpr:.0%} FPR", "review": f"{review_fpr:.0%} FPR",
                                "set_on": f"{n_real} real and {int(vy.sum())} fake items of held-out sources "
                                          "(pooled leave-one-source-out predictions)"},
            "held_out": binary_report(vy, vs, thresholds.likely_fake)}


WEAK_AUC = 0.7  # below this mean held-out AUC a model's decisions come with a caution


def caution(loso: list[dict]) -> str:
    """A caution for a model weak on sources it did not see (empty when it is not)."""
    aucs = [r["auc"] for r in loso if r.get("auc") is not None]
    if not aucs or np.mean(aucs) >= WEAK_AUC:
        return ""
    return (f"weak on sources it was not trained on (leave-one-source-out mean AUC {np.mean(aucs):.2f} over "
            f"{len(aucs)} sources): do not act on its decisions alone")


def stamp(bundle: str | Path, operating: dict, loso: list[dict], name: str, data: dict) -> Path:
    """Write the operating point and the leave-one-source-out table into a bundle, weights in fp16
    (the same scores within 1e-3: tests/unit/test_starter.py)."""
    bundle = Path(bundle)
    weights = bundle / "model.safetensors"
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    weights.write_bytes(save(state))  # the usual file modes, as save_bundle
    meta = BundleMeta.model_validate_json((bundle / "bundle.json").read_text())
    training = {k: v for k, v in meta.training.items() if k != "checkpoint"} | {"data": data}
    meta = meta.model_copy(update={
        "name": name, "demo": False, "caution": caution(loso), "calibration": operating["calibration"],
        "thresholds": operating["thresholds"],
        "operating_point": operating["operating_point"], "training": training,
        "metrics": {"held_out_pooled": operating["held_out"], "loso": loso},
        "version": hashlib.sha256(weights.read_bytes()).hexdigest()[:16]})
    (bundle / "bundle.json").write_text(json.dumps(json.loads(meta.model_dump_json()), indent=2))
    write_card(bundle)
    return bundle
