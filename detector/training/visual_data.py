"""LightningDataModule over a face-crop cache (`deepfake-detect preprocess`)."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torchvision.transforms import v2

from detector.training.cache import crop_array, read_index
from detector.training.sbi import self_blend


def train_augment() -> v2.Compose:
    """What uploads do to faces: mirror, colour, blur, downscale, JPEG re-compression, occlusion."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.2, 0.2, 0.2, 0.02)], p=0.5),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        v2.RandomApply([v2.RandomResize(80, 200, antialias=True)], p=0.2),  # downscale; resized back below
        v2.RandomApply([v2.JPEG((30, 95))], p=0.5),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=0.2, scale=(0.02, 0.15)),  # cutout
    ])


class CropDataset(Dataset):
    """Crops of one split: (image (3, S, S) float in [0, 1], label, video index).

    With `sbi` > 0, that fraction of real crops is returned as self-blended fakes (label 1).
    """

    def __init__(self, cache: str | Path, records: list[dict], size: int, augment: bool, sbi: float = 0.0,
                 seed: int = 0):
        self.cache, self.records, self.size, self.sbi = Path(cache), records, size, sbi
        self.augment = train_augment() if augment else v2.ToDtype(torch.float32, scale=True)
        self.videos = sorted({r["video"] for r in records})
        self._video_index = {v: i for i, v in enumerate(self.videos)}
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rec = self.records[i]
        img, label = crop_array(rec.get("cache", self.cache), rec), rec["label"]  # `also` caches name their own
        if label == 0 and self.sbi and self.rng.random() < self.sbi:
            lm = np.array(rec["landmarks"]) if rec.get("landmarks") else None
            img, label = self_blend(img, lm, self.rng), 1
        x = self.augment(torch.from_numpy(img).permute(2, 0, 1))  # (3, H, W)
        if x.shape[-1] != self.size:
            x = v2.functional.resize(x, [self.size, self.size], antialias=True)
        return x, torch.tensor(label, dtype=torch.float32), self._video_index[rec["video"]]


class CropDataModule(L.LightningDataModule):
    def __init__(self, cache: str, batch_size: int = 32, num_workers: int = 2, crop_size: int = 224,
                 balance: bool = True, sbi: float = 0.0, real_only: bool = False, val_split: str = "val",
                 holdout: str | None = None, holdout_split: str | None = None, merge_test: bool = False,
                 also: list[str] | None = None, seed: int = 0):
        """`sbi`: share of real training crops turned into self-blended fakes; `real_only` drops
        the dataset's own fakes (SBI then makes every fake). Leave-one-source-out: crops whose file
        path matches the regular expression `holdout` (and, with `holdout_split`, are in that split of
        their manifest) are the test split and nothing else is: the manifest's other test crops train,
        as they do with `merge_test` (the final model). `also`: more crop caches whose every crop trains
        (fine-tuning mixes the public corpora in, so the model does not forget them)."""
        super().__init__()
        self.save_hyperparameters()
        self.datasets: dict[str, CropDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        records = read_index(h.cache)
        if not records:
            raise FileNotFoundError(f"{h.cache}: no crops; run `deepfake-detect preprocess` first")
        for r in records:
            r["split"] = self._split(r)
        for extra in h.also or ():
            records += [r | {"split": "train", "cache": str(extra)} for r in read_index(extra)]
        for split, augment in (("train", True), (h.val_split, False), ("test", False)):
            recs = [r for r in records if r["split"] == split and not (split == "train" and h.real_only and r["label"])]
            self.datasets[split] = CropDataset(h.cache, recs, h.crop_size, augment,
                                               sbi=h.sbi if split == "train" else 0.0, seed=h.seed)

    def _split(self, rec: dict) -> str:
        h = self.hparams
        if h.holdout and re.search(h.holdout, rec["path"]) and h.holdout_split in (None, rec["split"]):
            return "test"
        if (h.holdout or h.merge_test) and rec["split"] == "test":
            return "train"
        return rec["split"]

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        labels = np.array([r["label"] for r in ds.records])
        sampler = None
        if self.hparams.balance and not self.hparams.sbi and 0 < labels.mean() < 1:
            weights = np.where(labels == 1, 0.5 / labels.mean(), 0.5 / (1 - labels.mean()))
            sampler = WeightedRandomSampler(weights.tolist(), len(labels), generator=torch.Generator().manual_seed(self.hparams.seed))
        return self._loader(ds, shuffle=sampler is None, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets[self.hparams.val_split])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"])

    def _loader(self, ds: CropDataset, shuffle: bool = False, sampler=None) -> DataLoader:
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0,
                          worker_init_fn=seed_worker)


def seed_worker(worker_id: int) -> None:
    """Each loader worker its own random stream for augmentation."""
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed % 2**32)
