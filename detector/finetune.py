"""`deepfake-detect finetune`: a face bundle trained further on a team's reviewed uploads (`deepfake-detect
dataset export`), with the public corpora's crops mixed in so it does not forget them; calibration and
thresholds set on held-back uploaders (the export groups by uploader, so none sits on both sides); a new
versioned bundle whose card says what it learned from and what it started from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import lightning as L

from detector.bundle import bundle_meta
from detector.card import write_card
from detector.config import ConfigError, FrontEndConfig, SamplingConfig
from detector.datasets import manifest
from detector.training.cache import preprocess
from detector.training.detector_module import EpochLines, WriteBundle, quiet_lightning
from detector.training.visual_data import CropDataModule
from detector.training.visual_module import VisualDetector


def finetune(bundle: str | Path, data: str | Path, out: str | Path, also: list[str] = (), epochs: int = 2,
             lr: float = 1e-4, batch_size: int = 32, workers: int = 2, sbi: float = 0.3,
             say: Callable[[str], None] = print, progress: Callable[[int], Callable[[], None]] | None = None) -> Path:
    """OUT/bundle from BUNDLE trained `epochs` more on DATA/labels.csv (and every crop of the `also` caches);
    `progress(total)` gives the callable to call as each upload's crops are cut."""
    meta = bundle_meta(bundle)
    if meta.modality != "visual":
        raise ConfigError(f"{bundle}: finetune takes a face bundle; the voice model's head is refitted by "
                          "`deepfake-detect starter voice`")
    labels = Path(data) / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: not a dataset from `deepfake-detect dataset export` (no labels.csv)")
    rows = manifest("csv", labels)  # splits by uploader: train, val (thresholds), test (trains too, below)
    out = Path(out)
    cache = out / "cache"
    frontend = FrontEndConfig(faces=meta.faces, sampling=meta.sampling or SamplingConfig(frames=16))
    cut = preprocess(rows, cache, frontend, workers=workers, progress=progress(len(rows)) if progress else None)
    say(f"face crops of {len(rows)} uploads: {cut}")
    backbone = meta.model.get("backbone", meta.family)
    module = VisualDetector(backbone=backbone, pretrained=False, drop_rate=meta.model.get("drop_rate", 0.0), lr=lr,
                            init_from=str(bundle))
    datamodule = CropDataModule(str(cache), batch_size=batch_size, num_workers=workers, crop_size=meta.input_size,
                                sbi=sbi, merge_test=True, also=[str(a) for a in also])
    with quiet_lightning():
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(out), num_sanity_val_steps=0,
                            callbacks=[WriteBundle(out=str(out / "bundle"), calibration="platt"),
                                       EpochLines("finetune", say)])
        trainer.fit(module, datamodule=datamodule)
    built = out / "bundle"
    record = json.loads((built / "bundle.json").read_text())
    record["name"] = f"{meta.name or backbone}-finetuned"
    record["training"] |= {"parent": meta.version, "finetuned_on": {"dataset": Path(data).name, "uploads": len(rows),
                                                                     "uploaders": len({r.group for r in rows})},
                           "also": [Path(a).name for a in also]}
    (built / "bundle.json").write_text(json.dumps(record, indent=2))
    write_card(built)
    return built
