"""`deepfake-detect finetune`: a bundle trained further on a team's reviewed uploads (`deepfake-detect
dataset export`), with the public corpora mixed in so it does not forget them; calibration and
thresholds set on held-back uploaders (the export groups by uploader, so none sits on both sides); a new
versioned bundle whose card says what it learned from and what it started from.

A face bundle trains on the uploads' face crops from its weights (`--also`: public crop caches). A voice
bundle (`voice_probe`: frozen encoders under a linear head) gets its head refitted on the uploads' voiced
windows and the features `starter voice` kept of the public corpora (`--also OUT/features.npz`), each
uploader weighing as one public source does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch

from detector.bundle import BundleMeta, bundle_meta, load_bundle, save_bundle
from detector.card import write_card
from detector.config import ConfigError, FrontEndConfig, SamplingConfig
from detector.datasets import Row, manifest
from detector.recipes import voice
from detector.recipes.operating import fit_operating_point
from detector.training.cache import preprocess
from detector.training.detector_module import EpochLines, WriteBundle, quiet_lightning
from detector.training.visual_data import CropDataModule
from detector.training.visual_module import VisualDetector


def finetune(bundle: str | Path, data: str | Path, out: str | Path, also: list[str] = (), epochs: int = 2,
             lr: float = 1e-4, batch_size: int = 32, workers: int = 2, sbi: float = 0.3,
             say: Callable[[str], None] = print, progress: Callable[[int], Callable[[], None]] | None = None) -> Path:
    """OUT/bundle from BUNDLE trained further on DATA/labels.csv (and `also`); `progress(total)` gives the
    callable to call as each upload is read. `epochs`, `lr`, `batch_size`, `sbi` train a face bundle."""
    meta = bundle_meta(bundle)
    labels = Path(data) / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: not a dataset from `deepfake-detect dataset export` (no labels.csv)")
    rows = manifest("csv", labels)  # splits by uploader: train, val (thresholds), test (trains too)
    out, advance = Path(out), progress(len(rows)) if progress else None
    if meta.modality == "audio":
        built = _voice(bundle, meta, rows, out, also, say, advance)
    else:
        built = _face(bundle, meta, rows, out, also, epochs, lr, batch_size, workers, sbi, say, advance)
    record = json.loads((built / "bundle.json").read_text())
    record["name"] = f"{(meta.name or meta.model.get('backbone', meta.family)).removesuffix('-finetuned')}-finetuned"
    record["training"] |= {"parent": meta.version, "finetuned_on": {"dataset": Path(data).name, "uploads": len(rows),
                                                                     "uploaders": len({r.group for r in rows})},
                           "also": [Path(a).name for a in also]}
    (built / "bundle.json").write_text(json.dumps(record, indent=2))
    write_card(built)
    return built


def _face(bundle, meta: BundleMeta, rows: list[Row], out: Path, also, epochs, lr, batch_size, workers, sbi, say,
          advance) -> Path:
    cache = out / "cache"
    frontend = FrontEndConfig(faces=meta.faces, sampling=meta.sampling or SamplingConfig(frames=16))
    cut = preprocess(rows, cache, frontend, workers=workers, progress=advance)
    say(f"face crops of {len(rows)} uploads: {cut}")
    module = VisualDetector(backbone=meta.model.get("backbone", meta.family), pretrained=False,
                            drop_rate=meta.model.get("drop_rate", 0.0), lr=lr, init_from=str(bundle))
    datamodule = CropDataModule(str(cache), batch_size=batch_size, num_workers=workers, crop_size=meta.input_size,
                                sbi=sbi, merge_test=True, also=[str(a) for a in also])
    with quiet_lightning():
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(out), num_sanity_val_steps=0,
                            callbacks=[WriteBundle(out=str(out / "bundle"), calibration="platt"),
                                       EpochLines("finetune", say)])
        trainer.fit(module, datamodule=datamodule)
    return out / "bundle"


def _voice(bundle, meta: BundleMeta, rows: list[Row], out: Path, also, say, advance) -> Path:
    if meta.family != "voice_probe":
        raise ConfigError(f"{bundle}: finetune refits the head of `voice_probe` voice bundles, not `{meta.family}` "
                          "(train those with `deepfake-detect train`)")
    net, _ = load_bundle(bundle)
    publics = []
    for extra in also:
        if not Path(extra).is_file():
            raise ConfigError(f"{extra}: --also for a voice bundle takes the features.npz that `starter voice` keeps")
        public, names = voice.load_features(extra)
        if names != list(net.features):
            raise ConfigError(f"{extra}: features {names}, not this bundle's {list(net.features)}")
        publics.append(public)
    windows, C = meta.training.get("windows", voice.RECIPE["windows"]), meta.training.get("C", voice.RECIPE["C"])
    _both_classes({r.label for r in rows if r.split == "val"}, {r.label for r in rows if r.split != "val"})
    # each uploader a cell, weighing as one public source does
    f = voice.features(net, [(r.path, r.label, f"reviewed:{r.group}") for r in rows], windows, progress=advance)
    say(f"voice windows of {len(rows)} uploads: {len(f['y'])}")
    val = np.isin(f["item"], [i for i, r in enumerate(rows) if r.split == "val"])
    train, held = ~val & ~f["scored"], val & f["scored"]
    _both_classes(set(f["y"][held]), set(f["y"][train]))  # files that could not be read, or held no voice
    X, y, cells = f["X"][train], f["y"][train], voice.cells_of(f)[train]
    for public in publics:
        keep = ~public["scored"]
        X, y = np.concatenate([X, public["X"][keep]]), np.concatenate([y, public["y"][keep]])
        cells = np.concatenate([cells, voice.cells_of({k: public[k][keep] for k in ("source", "y", "vocoded")})])
    with torch.no_grad():
        voice.fit_head(net, X, y, cells, C)
        logits = net.classify(torch.tensor(f["X"][held], dtype=torch.float32)).numpy()
    operating = fit_operating_point(logits, f["y"][held], f["item"][held])
    scored = operating["held_out"]
    set_on = f"{scored['n_real']} real and {scored['n_fake']} fake files of held-back uploaders"
    return save_bundle(out / "bundle", net, meta.model_copy(update={
        "calibration": operating["calibration"], "thresholds": operating["thresholds"],
        "operating_point": operating["operating_point"] | {"set_on": set_on},
        "metrics": {"val_video": scored},  # the held-back uploaders are its validation split
        "training": meta.training | {"head_refitted_on": {"train_items": int(train.sum()), "val_items": int(held.sum())}}}))


def _both_classes(held: set, training: set) -> None:
    for name, labels in (("held-back", held), ("training", training)):
        if len(labels) < 2:
            raise ConfigError(f"the {name} uploaders (by `group`) need real and fake recordings both, with voice in "
                              "them: export more uploaders")
