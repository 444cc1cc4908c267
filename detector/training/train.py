"""Training: `deepfake-detect train fit --config configs/visual/cpu_small.yaml` (or configs/audio/...).

LightningCLI does the argument work: each YAML names its LightningModule and LightningDataModule
by class path and says everything else about the run; `--print_config` shows it resolved.
"""

from __future__ import annotations

import warnings

from lightning import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from detector.training.detector_module import BinaryDetector


def main(args: list[str] | None = None) -> None:
    """Run LightningCLI on `args` (default: the command line)."""
    with warnings.catch_warnings():  # `deepfake-detect train` passes its args on, which LightningCLI warns about
        warnings.filterwarnings("ignore", "LightningCLI's args parameter")
        LightningCLI(BinaryDetector, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                     save_config_kwargs={"overwrite": True}, args=args)
