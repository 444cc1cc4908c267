"""Train a detector: `python train.py fit --config configs/visual/cpu_small.yaml`.

LightningCLI does the argument work: every YAML under configs/visual says everything about a run
(model, data, trainer, callbacks), and `--print_config` shows the resolved one.
"""

from lightning.pytorch.cli import LightningCLI

from detector.visual_data import CropDataModule
from detector.visual_module import VisualDetector


def main() -> None:
    LightningCLI(VisualDetector, CropDataModule, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
