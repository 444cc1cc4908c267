"""Every bundle gets a model card with the Hugging Face Hub's YAML header; the shipped cards are what their
recipes write from the shipped bundle.json."""

from __future__ import annotations

import shutil

import pytest
import yaml

from detector.bundle import STARTER, BundleMeta, bundle_meta, save_bundle
from detector.card import write_card
from detector.models import create_model
from detector.recipes import face, voice


def front_matter(path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_a_saved_bundle_gets_a_card_with_its_validation_figures(tmp_path):
    report = {"n": 10, "n_real": 6, "n_fake": 4, "auc": 0.8125, "eer": 0.25, "tpr": 0.5, "fpr": 0.0}
    meta = BundleMeta(modality="audio", family="lcnn", model={"width": 8}, demo=True,
                      training={"train_items": 40, "val_items": 10, "epochs": 2},
                      metrics={"val_frame": report, "val_video": report})
    bundle = save_bundle(tmp_path / "b", create_model("lcnn", width=8), meta)
    card = bundle / "MODEL_CARD.md"
    fields = front_matter(card)
    assert fields["pipeline_tag"] == "audio-classification" and "demo" in fields["tags"]
    (result,) = fields["model-index"][0]["results"]
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"roc_auc": 0.8125, "eer": 0.25}
    text = card.read_text()
    assert "**Demo model**" in text and f"Version `{bundle_meta(bundle).version}`" in text
    assert "| per video or file | 6 / 4 | 0.812 | 0.250 | 0.500 | 0.000 |" in text


def test_a_bundle_without_figures_gets_a_card_without_a_model_index(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(BundleMeta(modality="visual", family="x", model={}).model_dump_json())
    fields = front_matter(write_card(bundle))
    assert fields["pipeline_tag"] == "image-classification" and "model-index" not in fields


@pytest.mark.parametrize(("slot", "recipe"), [("visual", face), ("audio", voice)])
def test_the_shipped_cards_are_what_their_recipe_writes(tmp_path, slot, recipe):
    copy = tmp_path / slot
    shutil.copytree(STARTER / slot, copy)
    write_card(copy, recipe.CARD)
    assert (copy / "MODEL_CARD.md").read_text() == (STARTER / slot / "MODEL_CARD.md").read_text()
    fields = front_matter(copy / "MODEL_CARD.md")
    pooled = bundle_meta(copy).metrics["held_out_pooled"]
    (result,) = fields["model-index"][0]["results"]
    assert result["metrics"][0]["value"] == round(pooled["auc"], 4) and fields["license"] == "other"
    assert fields["datasets"]  # the sources it learned from
