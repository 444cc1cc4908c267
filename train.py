"""Train a detector: `python train.py fit --config configs/visual/cpu_small.yaml` (or configs/audio/...).

LightningCLI does the argument work: each YAML names its LightningModule and LightningDataModule
by class path and says everything else about the run; `--print_config` shows it resolved.
"""

from lightning import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from detector.detector_module import BinaryDetector


def main() -> None:
    LightningCLI(BinaryDetector, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                 save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
