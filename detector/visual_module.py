"""LightningModule for face-crop classifiers, and the callback that writes the checkpoint bundle."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from detector.bundle import BundleMeta, Thresholds, save_bundle
from detector.calibration import fit_calibration
from detector.config import FaceConfig, FrontEndConfig
from detector.metrics import binary_report, by_video, threshold_at_fpr
from detector.models import create_model


class VisualDetector(L.LightningModule):
    def __init__(self, backbone: str = "efficientnet_b0", pretrained: bool | str = False, drop_rate: float = 0.0,
                 lr: float = 3e-4, weight_decay: float = 1e-4, input_size: int = 224):
        super().__init__()
        self.save_hyperparameters()
        self.net = create_model("timm", backbone=backbone, pretrained=pretrained, drop_rate=drop_rate)
        self._outputs: dict[str, list] = {"val": [], "test": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B,) logits

    def training_step(self, batch, _):
        x, y, _ = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, stage: str, batch) -> None:
        x, y, video = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.binary_cross_entropy_with_logits(logits, y))
        self._outputs[stage].append((logits.float().cpu(), y.cpu(), video.cpu()))

    def validation_step(self, batch, _):
        self._eval_step("val", batch)

    def test_step(self, batch, _):
        self._eval_step("test", batch)

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._outputs[stage]:
            return
        logits, y, video = (torch.cat(t) for t in zip(*self._outputs[stage]))
        self._outputs[stage].clear()
        probs = torch.sigmoid(logits).numpy()
        frame = binary_report(y.numpy(), probs)
        vs, vy, _ = by_video(probs, y.numpy().astype(int), video.numpy().tolist())
        vid = binary_report(vy, vs)
        # 0.5 when a split holds one class only, so checkpoint selection still has a number
        self.log(f"{stage}/frame_auc", frame["auc"] if frame["auc"] is not None else 0.5)
        self.log(f"{stage}/video_auc", vid["auc"] if vid["auc"] is not None else 0.5, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)}


@torch.inference_mode()
def predict_logits(net: torch.nn.Module, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, labels and video indices over a loader of (x, y, video) batches."""
    device = next(net.parameters()).device
    out = [(net(x.to(device)).float().cpu(), y, v) for x, y, v in loader]
    logits, y, v = (torch.cat(t).numpy() for t in zip(*out))
    return logits, y.astype(int), v


class WriteBundle(L.Callback):
    """At the end of fit: best checkpoint -> calibration and thresholds on validation -> bundle."""

    def __init__(self, out: str = "out/visual_bundle", calibration: str = "temperature",
                 fpr: float = 0.01, review_fpr: float = 0.1):
        self.out, self.calibration, self.fpr, self.review_fpr = out, calibration, fpr, review_fpr

    def on_fit_end(self, trainer: L.Trainer, module: VisualDetector) -> None:
        if trainer.global_rank != 0:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            module.load_state_dict(torch.load(best, map_location=module.device, weights_only=False)["state_dict"])
        dm = trainer.datamodule
        module.eval()
        logits, y, video = predict_logits(module.net, dm.val_dataloader())
        cal = fit_calibration(logits, y, self.calibration)
        vs, vy, _ = by_video(cal(logits), y, video.tolist())
        thresholds = Thresholds(likely_fake=threshold_at_fpr(vy, vs, self.fpr),
                                review=threshold_at_fpr(vy, vs, self.review_fpr))
        h = module.hparams
        meta = BundleMeta(
            family="timm", model={"backbone": h.backbone, "drop_rate": h.drop_rate}, input_size=h.input_size,
            mean=module.net.mean.flatten().tolist(), std=module.net.std.flatten().tolist(),
            faces=_cache_faces(dm.hparams.cache), calibration=cal, thresholds=thresholds,
            operating_point={"likely_fake": f"{self.fpr:.0%} FPR on validation videos",
                             "review": f"{self.review_fpr:.0%} FPR on validation videos"},
            training={"cache": str(dm.hparams.cache), "sbi": dm.hparams.sbi, "real_only": dm.hparams.real_only,
                      "train_crops": len(dm.datasets["train"]), "val_crops": len(dm.datasets[dm.hparams.val_split]),
                      "epochs": trainer.current_epoch, "checkpoint": str(best)},
            metrics={"val_frame": binary_report(y, cal(logits), thresholds.likely_fake),
                     "val_video": binary_report(vy, vs, thresholds.likely_fake)},
        )
        path = save_bundle(self.out, module.net, meta)
        print(f"checkpoint bundle written to {path}")


def _cache_faces(cache: str) -> FaceConfig:
    """The face settings the training crops were cut with, so scoring cuts them the same way."""
    f = Path(cache) / "frontend.json"
    return FrontEndConfig.model_validate_json(f.read_text()).faces if f.is_file() else FaceConfig()
