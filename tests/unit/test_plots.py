"""Evaluation figures: what a reader needs is on them (AUC, operating points, log FPR, EER, ECE)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from detector import plots

THRESHOLDS = {"likely_fake": 0.8, "review": 0.5}


@pytest.fixture(scope="module")
def curves():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    return {"frames": (y, s), "videos": (y[::10], s[::10])}


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_roc_has_auc_in_its_legend_a_log_fpr_axis_and_the_operating_points(curves):
    fig = plots.roc_figure(curves, THRESHOLDS)
    y, s = curves["frames"]
    assert f"frames: AUC {roc_auc_score(y, s):.3f} (n=400)" in _legend(fig)
    assert fig.axes[0].get_xscale() == "log"
    assert {"likely_fake ≥ 0.8", "review ≥ 0.5"} <= set(_legend(fig))
    point = next(line for line in fig.axes[0].lines if line.get_label() == "review ≥ 0.5")
    assert point.get_xdata()[0] == pytest.approx(np.mean(s[y == 0] >= 0.5))
    assert point.get_ydata()[0] == pytest.approx(np.mean(s[y == 1] >= 0.5))


def test_det_marks_the_equal_error_rate(curves):
    assert any(t.startswith("frames: EER ") for t in _legend(plots.det_figure(curves)))


def test_reliability_and_histograms_name_calibration_error_classes_and_thresholds(curves):
    assert any(t.startswith("videos: ECE ") for t in _legend(plots.reliability_figure(curves)))
    assert {"real (n=200)", "fake (n=200)", "likely_fake 0.8", "review 0.5"} <= set(
        _legend(plots.histogram_figure(curves, THRESHOLDS)))


@pytest.mark.parametrize("kind, expected", [("visual", {"roc", "reliability", "histograms"}),
                                            ("audio", {"roc", "reliability", "histograms", "det"})])
def test_write_plots_saves_each_figure_and_names_its_file(curves, tmp_path, kind, expected):
    names = plots.write_plots(tmp_path, kind, curves, THRESHOLDS)
    assert set(names) == expected
    assert all((tmp_path / f).stat().st_size > 5000 for f in names.values())


def test_evaluate_writes_the_figures_and_links_them_from_report_json(bundles, tmp_path):
    import json

    from detector import samples
    from detector.datasets import Row
    from detector.evaluate import evaluate

    rows = []
    for i in range(8):  # crops as they are: real ones plain, fake ones tinted
        crop = samples.astronaut()[100:228, 150:278] // (1 + i % 2)
        path = samples.write_image(tmp_path / f"c{i}.png", crop)
        rows.append(Row(str(path), i % 2, "test", f"v{i}", "toy/fake" if i % 2 else "toy/real"))
    evaluate(bundles[0], rows, tmp_path / "report", crops_as_is=True, device="cpu")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["plots"] == {"roc": "roc.png", "reliability": "reliability.png", "histograms": "histograms.png"}
    assert all((tmp_path / "report" / f).is_file() for f in report["plots"].values())


def test_det_legend_gives_the_reports_eer_and_roc_points_sit_inside_an_axis_scaled_to_the_real_items():
    from detector.metrics import eer

    y, s = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8, 0.9, 0.95])
    (legend,) = [t for t in _legend(plots.det_figure({"files": (y, s)})) if t.startswith("files")]
    assert legend == f"files: EER {eer(y, s):.1%} (n=10)"
    fig = plots.roc_figure({"files": (y, s)}, {"likely_fake": 0.99})  # no real file at or above it: FPR 0
    point = next(line for line in fig.axes[0].lines if line.get_label() == "likely_fake ≥ 0.99")
    low, _ = fig.axes[0].get_xlim()
    assert point.get_xdata()[0] == 0.5 / 4 and low < point.get_xdata()[0] / 1.5  # 4 real files: the marker whole


def test_histogram_bins_follow_the_scores_not_the_unit_interval():
    y, s = np.array([0, 0, 1, 1]), np.array([0.551, 0.553, 0.556, 0.558])
    fig = plots.histogram_figure({"videos": (y, s)}, {"likely_fake": 0.5533, "review": 0.5441})
    ax = fig.axes[0]
    assert ax.get_xlim()[1] - ax.get_xlim()[0] < 0.1 and max(p.get_height() for p in ax.patches) == 1
