"""What every detector's LightningModule shares: one step for train/val/test, video-level AUC, the
callback that turns the best checkpoint into a calibrated bundle, and quiet per-epoch lines."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from detector.bundle import BundleMeta, Thresholds, save_bundle
from detector.scoring.calibration import fit_calibration
from detector.metrics import binary_report, by_video, threshold_at_fpr


class BinaryDetector(L.LightningModule):
    """Batches are (x, label, item): `item` names the video or file a sample came from. Subclasses
    set `self.net` ((B, ...) -> (B,) fake logits) and say what goes into the bundle."""

    net: torch.nn.Module

    def __init__(self, lr: float = 3e-4, weight_decay: float = 1e-4):
        super().__init__()
        self._outputs: dict[str, list] = {"val": [], "test": []}

    def bundle_fields(self, datamodule) -> dict:
        """family, model kwargs and the preprocessing settings of this kind of detector."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y)

    def training_step(self, batch, _):
        x, y, _ = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, stage: str, batch) -> None:
        x, y, item = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.binary_cross_entropy_with_logits(logits, y))
        self._outputs[stage].append((logits.float().cpu(), y.cpu(), item.cpu()))

    def validation_step(self, batch, _):
        self._eval_step("val", batch)

    def test_step(self, batch, _):
        self._eval_step("test", batch)

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._outputs[stage]:
            return
        logits, y, item = (torch.cat(t) for t in zip(*self._outputs[stage]))
        self._outputs[stage].clear()
        probs = torch.sigmoid(logits).numpy()
        frame = binary_report(y.numpy(), probs)
        vs, vy, _ = by_video(probs, y.numpy().astype(int), item.numpy().tolist())
        video = binary_report(vy, vs)
        # 0.5 when a split holds one class only, so checkpoint selection still has a number
        self.log(f"{stage}/frame_auc", frame["auc"] if frame["auc"] is not None else 0.5)
        self.log(f"{stage}/video_auc", video["auc"] if video["auc"] is not None else 0.5, prog_bar=True)
        if video["eer"] is not None:
            self.log(f"{stage}/video_eer", video["eer"])

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)}


def _portable(settings: dict) -> dict:
    """Training settings as a bundle records them: a path by its last part, never the building machine's."""
    return {k: Path(v).name if isinstance(v, (str, Path)) and Path(v).is_absolute() else v for k, v in settings.items()}


@torch.inference_mode()
def predict_logits(net: torch.nn.Module, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, labels and item indices over a loader of (x, y, item) batches."""
    device = next(net.parameters()).device
    out = [(net(x.to(device)).float().cpu(), y, v) for x, y, v in loader]
    logits, y, v = (torch.cat(t).numpy() for t in zip(*out))
    return logits, y.astype(int), v


class WriteBundle(L.Callback):
    """At the end of fit: best checkpoint -> calibration and thresholds on validation -> bundle."""

    def __init__(self, out: str = "out/bundle", calibration: str = "temperature",
                 fpr: float = 0.01, review_fpr: float = 0.1, demo: bool = False):
        """`demo`: the bundle says it learned from generated samples (scoring then warns)."""
        self.out, self.calibration, self.fpr, self.review_fpr, self.demo = out, calibration, fpr, review_fpr, demo

    def on_fit_end(self, trainer: L.Trainer, module: BinaryDetector) -> None:
        if trainer.global_rank != 0:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            module.load_state_dict(torch.load(best, map_location=module.device, weights_only=False)["state_dict"])
        dm = trainer.datamodule
        module.eval()
        logits, y, item = predict_logits(module, dm.val_dataloader())
        cal = fit_calibration(logits, y, self.calibration)
        vs, vy, _ = by_video(cal(logits), y, item.tolist())
        thresholds = Thresholds(likely_fake=threshold_at_fpr(vy, vs, self.fpr),
                                review=threshold_at_fpr(vy, vs, self.review_fpr))
        meta = BundleMeta(
            **module.bundle_fields(dm), demo=self.demo, calibration=cal, thresholds=thresholds,
            operating_point={"likely_fake": f"{self.fpr:.0%} FPR on validation videos/files",
                             "review": f"{self.review_fpr:.0%} FPR on validation videos/files"},
            training=_portable(dict(dm.hparams)) | {"epochs": trainer.current_epoch, "checkpoint": Path(best).name,
                                         "train_items": len(dm.datasets["train"]),
                                         "val_items": len(dm.datasets[dm.hparams.val_split])},
            metrics={"val_frame": binary_report(y, cal(logits), thresholds.likely_fake),
                     "val_video": binary_report(vy, vs, thresholds.likely_fake)},
        )
        path = save_bundle(self.out, module.net, meta)
        print(f"checkpoint bundle written to {path}")


class EpochLines(L.Callback):
    """One line per epoch: which model, the epoch, and the metrics logged so far."""

    def __init__(self, name: str, say: Callable[[str], None]):
        self.name, self.say = name, say

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = ", ".join(f"{k} {float(v):.3f}" for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1)
        self.say(f"{self.name}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, {metrics}")


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Without Lightning's banners (accelerators found, a logging service's advert) and the deprecation
    warnings its libraries raise: none is the user's to act on."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec")
            yield
    finally:
        lightning_log.setLevel(level)
