"""The same scorer on many devices and nodes: Lightning `Trainer.predict` with DDP.

Every rank takes its share of the uploads (Lightning's unrepeated sampler: none twice, none
dropped), scores them with its own `Scorer`, and appends records to its own part file
(`results.jsonl.rank<N>`); at the end rank 0 folds the parts into the results file. A crashed run
leaves part files behind; the next run counts them as done and folds them in.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from detector.scoring.results import ResultsFile, merge_parts, part_path


class ScoringModule(L.LightningModule):
    """Wraps a Scorer: a predict batch is a list of upload paths, the output their records."""

    def __init__(self, scorer_kwargs: dict, workers: int = 2):
        super().__init__()
        self.scorer_kwargs, self.workers = scorer_kwargs, workers

    def setup(self, stage: str) -> None:
        from detector.scoring.scorer import Scorer

        device = self.trainer.strategy.root_device
        if device.type == "cpu":  # ranks on one machine share its cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, self.trainer.num_devices)))
        self.scorer = Scorer(**self.scorer_kwargs, device=str(device))

    def predict_step(self, batch: list[str], batch_idx: int) -> list:
        return list(self.scorer.score_many(batch, workers=self.workers))


class PartWriter(BasePredictionWriter):
    """Each rank appends its records to its own part file as batches finish."""

    def __init__(self, out: str | Path):
        super().__init__(write_interval="batch")
        self.out, self.results, self.count = Path(out), None, 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.results = ResultsFile(part_path(self.out, trainer.global_rank)).__enter__()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for record in prediction:
            self.results.append(record)
        self.count += len(prediction)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.results.__exit__(None, None, None)
        trainer.strategy.barrier()  # every rank's part is complete
        if trainer.is_global_zero:
            merge_parts(self.out)


def score_distributed(paths: list[Path], out: str | Path, scorer_kwargs: dict, devices: int = 1, num_nodes: int = 1,
                      accelerator: str = "auto", uploads_per_step: int = 8, workers: int = 2) -> int:
    """Score `paths` on `devices` x `num_nodes` ranks into `out`; returns this rank's record count."""
    writer = PartWriter(out)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                        strategy="ddp" if devices * num_nodes > 1 else "auto", callbacks=[writer], logger=False,
                        enable_checkpointing=False, enable_model_summary=False)
    loader = DataLoader([str(p) for p in paths], batch_size=uploads_per_step, collate_fn=list)
    trainer.predict(ScoringModule(scorer_kwargs, workers), loader, return_predictions=False)
    return writer.count
