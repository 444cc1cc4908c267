"""Fusion of modality scores, and model batches shared across uploads."""

from __future__ import annotations

import numpy as np
import pytest

from detector.batching import SharedBatches
from detector.bundle import Thresholds
from detector.fusion import Fusion, fit_fusion

OWN = {"visual": Thresholds(likely_fake=0.9, review=0.5), "audio": Thresholds(likely_fake=0.6, review=0.4)}


def test_max_fusion_takes_the_most_severe_modality_by_its_own_thresholds():
    fusion = Fusion()
    # visual 0.8 is only `review` by its thresholds; audio 0.7 is `likely_fake` by its own
    assert fusion.fuse({"visual": 0.8, "audio": 0.7}, OWN) == (0.7, "likely_fake")
    assert fusion.fuse({"visual": 0.3, "audio": None}, OWN) == (0.3, "clear")
    assert fusion.fuse({"visual": None, "audio": None}, OWN) == (None, "no_signal")


def test_weighted_fusion_averages_the_modalities_present():
    fusion = Fusion(kind="weighted", weights={"visual": 3.0, "audio": 1.0}, thresholds=Thresholds(likely_fake=0.7, review=0.4))
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
    assert fusion.kind == "logistic" and abs(fusion.weights["audio"]) > 5 * abs(fusion.weights["visual"])
    fused = np.array([fusion.fuse(s, {})[0] for s in scores])
    with_audio = np.array([s["audio"] is not None for s in scores])
    assert fusion.fitted_on["report"]["auc"] > 0.9
    neg = with_audio & (labels == 0)
    assert (fused[neg] >= fusion.thresholds.likely_fake).mean() <= 0.05 + 1e-9  # its operating point holds
    assert fusion.fuse({"visual": 0.9, "audio": 0.95}, {})[1] == "likely_fake"
    assert Fusion.model_validate_json(fusion.model_dump_json()) == fusion  # stored and read back as JSON
    with pytest.raises(ValueError):
        fit_fusion(scores[:3], [0, 0, 0])


def test_shared_batches_mix_uploads_and_return_each_result_to_its_owner():
    calls = []

    def run(xs):
        calls.append(len(xs))
        return np.array([x.sum() for x in xs])

    sizes: list[int] = []
    batches = SharedBatches(run, batch_size=4, on_batch=sizes.append)
    got: dict = {}
    for upload, n in (("a", 3), ("b", 3), ("c", 1)):
        for i in range(n):
            batches.add(np.full(2, 10 * ord(upload) + i), lambda y, k=(upload, i): got.__setitem__(k, y))
    assert calls == [4] and batches.pending() == 3  # a's three and b's first ran together
    batches.flush()
    assert calls == [4, 3] and sizes == [4, 3]
    assert got == {(u, i): 2 * (10 * ord(u) + i) for u, n in (("a", 3), ("b", 3), ("c", 1)) for i in range(n)}


def test_shared_batches_not_eager_leave_every_model_call_to_the_loop():
    calls = []
    batches = SharedBatches(lambda xs: calls.append(len(xs)) or np.zeros(len(xs)), batch_size=2, eager=False)
    got = []
    for i in range(5):
        batches.add(np.zeros(1), got.append)
    assert calls == [] and batches.pending() == 5 and batches.ready(max_wait_s=60)  # full: ready at once
    batches.flush()
    assert calls == [2, 2, 1] and len(got) == 5 and not batches.ready(max_wait_s=0)
    batches.add(np.zeros(1), got.append)
    assert not batches.ready(max_wait_s=60) and batches.ready(max_wait_s=0)  # partly filled: after the wait
