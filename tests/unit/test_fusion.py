"""Fusion of modality scores."""

from __future__ import annotations

import numpy as np
import pytest

from detector.bundle import Thresholds
from detector.scoring.fusion import Fusion, fit_fusion

OWN = {"visual": Thresholds(likely_fake=0.9, review=0.5), "audio": Thresholds(likely_fake=0.6, review=0.4)}


def test_max_fusion_takes_the_most_severe_modality_by_its_own_thresholds():
    fusion = Fusion()
    # visual 0.8 is only `review` by its thresholds; audio 0.7 is `likely_fake` by its own
    assert fusion.fuse({"visual": 0.8, "audio": 0.7}, OWN) == (0.7, "likely_fake")
    assert fusion.fuse({"visual": 0.3, "audio": None}, OWN) == (0.3, "clear")
    assert fusion.fuse({"visual": None, "audio": None}, OWN) == (None, "no_signal")


def test_weighted_fusion_averages_the_modalities_present():
    fusion = Fusion(rule="weighted", weights={"visual": 3.0, "audio": 1.0}, thresholds=Thresholds(likely_fake=0.7, review=0.4))
    score, decision = fusion.fuse({"visual": 0.8, "audio": 0.4}, OWN)
    assert score == pytest.approx(0.7) and decision == "likely_fake"
    assert fusion.fuse({"visual": None, "audio": 0.5}, OWN) == (pytest.approx(0.5), "review")


def test_logistic_fusion_learns_which_modality_to_trust():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    # audio carries the label, visual is noise; some uploads have no audio
    scores = [{"visual": float(rng.uniform(0.05, 0.95)),
               "audio": None if i % 5 == 0 else float(np.clip(0.25 + 0.5 * y + rng.normal(0, 0.1), 0.01, 0.99))}
              for i, y in enumerate(labels)]
    fusion = fit_fusion(scores, labels.tolist(), fpr=0.05)
    assert fusion.rule == "logistic" and abs(fusion.weights["audio"]) > 5 * abs(fusion.weights["visual"])
    fused = np.array([fusion.fuse(s, {})[0] for s in scores])
    with_audio = np.array([s["audio"] is not None for s in scores])
    assert fusion.fitted_on["report"]["auc"] > 0.9
    neg = with_audio & (labels == 0)
    assert (fused[neg] >= fusion.thresholds.likely_fake).mean() <= 0.05 + 1e-9  # its operating point holds
    assert fusion.fuse({"visual": 0.9, "audio": 0.95}, {})[1] == "likely_fake"
    assert Fusion.model_validate_json(fusion.model_dump_json()) == fusion  # stored and read back as JSON
    with pytest.raises(ValueError):
        fit_fusion(scores[:3], [0, 0, 0])


def test_files_written_before_kind_was_renamed_still_load():
    from detector.bundle import BundleMeta
    from detector.scoring.calibration import Calibration
    from detector.scoring.scorer import ModelInfo

    meta = BundleMeta.model_validate({"kind": "audio", "family": "lcnn", "model": {}, "calibration": {"kind": "platt"}})
    assert meta.modality == "audio" and meta.calibration.method == "platt"
    assert Calibration.model_validate({"kind": "temperature", "a": 0.5}).method == "temperature"
    assert Fusion.model_validate({"kind": "weighted"}).rule == "weighted"
    assert ModelInfo.model_validate({"kind": "visual", "name": "n", "version": "v", "thresholds": {}}).modality == "visual"
