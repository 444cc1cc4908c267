"""The starter face model: a small CNN trained from scratch on every face source of `../shared/data`
plus self-blended fakes of every real face, and its leave-one-source-out table.

    deepfake-detect starter face --data ../shared/data --out out/starter/face [--folds ...] [--recipe YAML]
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np

from detector.training.cache import preprocess, read_index
from detector.config import FrontEndConfig, SamplingConfig
from detector.datasets import Row, manifest
from detector.training.detector_module import EpochLines, WriteBundle, predict_logits, quiet_lightning
from detector.metrics import by_upload
from detector.recipes.loso import held_out_row, write_table
from detector.recipes.operating import fit_operating_point, stamp
from detector.training.visual_data import CropDataModule
from detector.training.visual_module import VisualDetector

# held-out source -> (regex on the crop's file path, manifest split or None for all of it)
FOLDS = {
    "ffpp": (r"/ffpp", None),  # FaceForensics++ c23 videos and c40 frames
    "stylegan2_ffhq": (r"/stylegan2_ffhq/", None),  # whole-face synthesis beside FFHQ photos
    "dfdc": (r"dfdc|/crops/", "test"),  # a fifth of DFDC's originals, with the fakes made from them
}
# frames of one clip shipped as images (FF++ c40): one upload, as the video they came from would be
CLIP_FRAMES = re.compile(r"(ffpp_c40_frames/(?:real|fake))/frame_\d+\.\w+$")
# mobilenetv3_small: about 4x resnet10t's training steps per second at 128 px on 2 cores (the recipe must
# fit an hour); these are the settings the shipped model and its table came from. `--recipe` overrides
# them (configs/starter/face_gpu.yaml: the bigger variant for a GPU)
RECIPE = dict(backbone="mobilenetv3_small_100", pretrained=False, input_size=128, lr=2e-3, batch_size=32, sbi=0.4,
              epochs=8, workers=2, precision="32-true")


def corpus(data: str | Path) -> list[Row]:
    """Every face source: DFDC crops (pairs grouped by original), StyleGAN2/FFHQ, FF++ (videos and
    frames), DFDC videos, and real talking faces (self-blended fakes come from these in training)."""
    d = Path(data)
    return (manifest("csv", d / "images" / "labels.csv")
            + manifest("csv", d / "crops" / "labels.csv", group_regex=r"/([a-z]+)_[^/]*$", source_regex=r"^()")
            + manifest("csv", d / "video" / "labels.csv", group_regex=r"/(\d{3}|[a-z]+)(?:_\d{3})?\.mp4$",
                       source_regex=r"^([a-z_]+)/")
            + manifest("csv", d / "talking" / "labels.csv"))


def build_cache(data: str | Path, cache: str | Path, progress: Callable[[], None] | None = None) -> dict:
    """Face crops of the whole corpus through the scoring front end (16 frames per video)."""
    cfg = FrontEndConfig(sampling=SamplingConfig(frames=16))
    return preprocess(corpus(data), cache, cfg, progress=progress)


def train(cache: Path, out: Path, r: dict, bundle: Path | None = None, **split) -> tuple[VisualDetector, CropDataModule]:
    """The recipe `r` on the cache's crops (`split`: CropDataModule's holdout / merge_test); with `bundle`,
    the model written there."""
    L.seed_everything(0, verbose=False)
    module = VisualDetector(backbone=r["backbone"], pretrained=r["pretrained"], lr=r["lr"], drop_rate=0.2)
    data = CropDataModule(str(cache), batch_size=r["batch_size"], num_workers=r["workers"], crop_size=r["input_size"],
                          sbi=r["sbi"], **split)
    callbacks = [WriteBundle(out=str(bundle), calibration="none")] if bundle else []
    with quiet_lightning():
        trainer = L.Trainer(max_epochs=r["epochs"], accelerator="auto", devices=1, precision=r["precision"],
                            logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(out), num_sanity_val_steps=0,
                            callbacks=callbacks + [EpochLines(f"  {out.name}", print)],
                            enable_checkpointing=bool(bundle))
        trainer.fit(module, datamodule=data)
    return module, data


def fold(cache: Path, out: Path, name: str, recipe: dict) -> dict:
    """Train without source `name`, score its crops: per-crop logits with labels and videos."""
    pattern, split = FOLDS[name]
    module, data = train(cache, out / name, recipe, holdout=pattern, holdout_split=split)
    module.eval()
    logits, y, item = predict_logits(module, data.test_dataloader())
    test = data.datasets["test"]  # read in order: the i-th logit is the i-th record's
    videos, tracks = [upload_of(test.videos[i]) for i in item], [r["track"] for r in test.records]
    return {"logits": logits.tolist(), "labels": y.tolist(), "videos": videos, "tracks": tracks}


def upload_of(video: str) -> str:
    """What the held-out table counts as one upload: a video, an image, or a clip's frames together."""
    return m.group(1) if (m := CLIP_FRAMES.search(video)) else video


def run(data: str | Path, out: str | Path, folds: list[str], final: bool = True, recipe: dict | None = None,
        cache: str | Path | None = None) -> Path:
    """Leave-one-source-out folds, then (with `final`) the model trained on every source, its
    calibration and thresholds set on the held-out predictions of all folds. `recipe` overrides
    RECIPE's settings; `cache`: crops already cut by `build_cache` (then `data` is not read)."""
    out, recipe = Path(out), {**RECIPE, **(recipe or {})}
    out.mkdir(parents=True, exist_ok=True)
    if cache is None:
        cache = out / "cache"
        done = itertools.count(1)

        def progress() -> None:  # the first run cuts ~4,300 files: a line every 200
            if (n := next(done)) % 200 == 0:
                print(f"  face crops: {n} files", flush=True)

        print(f"face crops: {build_cache(data, cache, progress=progress)}", flush=True)
    cache = Path(cache)
    rows, pooled = [], {"logits": [], "labels": [], "videos": [], "tracks": []}
    for name in folds:
        print(f"fold: {name} held out", flush=True)
        f = fold(cache, out, name, recipe)
        (out / f"fold_{name}.json").write_text(json.dumps(f))
        probs = 1 / (1 + np.exp(-np.asarray(f["logits"])))
        vs, vy, keys = by_upload(probs, f["labels"], f["videos"], f["tracks"])
        rows.append(held_out_row(name, vy, vs, keys))
        print(f"  {rows[-1]}", flush=True)
        for k in pooled:
            pooled[k] += f[k]
    table = write_table(out, rows, "videos/images")
    if not final:
        return table
    print("final: every source", flush=True)
    bundle = out / "bundle"
    train(cache, out / "final", recipe, bundle=bundle, merge_test=True)
    operating = fit_operating_point(pooled["logits"], pooled["labels"], pooled["videos"], tracks=pooled["tracks"])
    stamp(bundle, operating, loso=rows, name="starter-face", data=_data_counts(cache))
    return table


def _data_counts(cache: Path) -> dict:
    recs = read_index(cache)
    return {"crops": len(recs), "real_crops": sum(r["label"] == 0 for r in recs),
            "fake_crops": sum(r["label"] == 1 for r in recs), "files": len({r["path"] for r in recs})}


CARD = """
# Model card: starter-face

A face-crop classifier (timm `mobilenetv3_small_100`, 128 px, 1.5 M parameters, trained from
scratch: no pretrained weights can be downloaded where it was made) that `deepfake-detect score`,
`serve` and `evaluate` use when no visual bundle is named. Scores are the calibrated probability
that a face crop is manipulated; a video's face track averages its crops.

**Intended use**: a first pass that orders uploads for human review, beside the voice model and
C2PA provenance. **Not for**: deciding alone that a person's upload is fake, evidence in any
dispute, identifying people, or any use on faces of people who have not agreed where the law
requires it. Its leave-one-source-out figures below are near chance: on media unlike its training
data, treat its score as weak evidence and its `likely_fake` as a request for review.

**Training data** (`../shared/data`, research use only; see its README for each source's terms):
one face crop of each of 3,998 DFDC videos (1,999 originals and a fake of each, non-commercial DFDC
terms), 40 StyleGAN2 faces and 80 FFHQ photos, FaceForensics++ c23 videos (3 real, 4 fake) and 32 c40
frames, 4 DFDC clips, 166 DFDC crops and 15 real talking-face clips; every crop cut by the scoring
front end (MTCNN, square 1.3x box), 16 frames per video; 40% of real crops become self-blended
fakes (SBI) in each epoch; augmentation: flip, colour, blur, downscale, JPEG 30-95, cutout.
**What it misses**: whole-face synthesis it has not seen (StyleGAN2 held out is near chance), FF++
face swaps and reenactment when FF++ is held out; faces under about 40 px; anything the front end
does not detect as a face.

**Retrain**: `deepfake-detect starter face --install` (or `make models`, which also retrains the
voice model): on 2 CPU cores about 17 minutes to cut the crops, then about 40 for the three folds
and the final model. Seed 0; the spread between runs and seeds has not been measured.
"""
