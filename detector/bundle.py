"""Checkpoint bundle: weights plus everything needed to score with them alone.

    BUNDLE/model.safetensors   the network's state dict
    BUNDLE/bundle.json         family + model kwargs, input size, mean/std, face-crop settings,
                               calibration, thresholds, training data and metrics
    BUNDLE/MODEL_CARD.md       the same for people, with the Hugging Face Hub's YAML header
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from pydantic import AliasChoices, BaseModel, Field
from safetensors.torch import load_file, save

from detector.scoring.calibration import Calibration
from detector.config import AudioConfig, FaceConfig, SamplingConfig
from detector.models import create_model


STARTER = Path(__file__).parent / "weights"  # the starter bundles shipped inside the package


def resolve_bundle(choice: str | Path | None, modality: str) -> Path | None:
    """What `--visual`/`--audio` (or `Scorer(visual=..., audio=...)`) name: "starter" the shipped
    bundle of `modality`, None or "none" no model, anything else a bundle folder."""
    if choice is None or str(choice) == "none":
        return None
    if str(choice) == "starter":
        folder = STARTER / modality
        if not (folder / "bundle.json").is_file():
            raise FileNotFoundError(f"this installation has no starter {modality} model ({folder}); name a bundle")
        return folder
    return Path(choice)


class Thresholds(BaseModel):
    likely_fake: float = 0.5  # at the bundle's operating point (e.g. 1% FPR on validation videos)
    review: float = 0.3


class BundleMeta(BaseModel):
    modality: str = Field("visual", validation_alias=AliasChoices("modality", "kind"))  # visual | audio (older bundles: "kind")
    name: str = ""  # what Verdicts call the model, e.g. "starter-face"; empty: the family or backbone
    demo: bool = False  # trained on generated samples by `deepfake-detect demo`: never for real decisions
    caution: str = ""  # printed whenever it decides: why its scores need care (e.g. weak on unseen sources)
    family: str  # model registry name
    model: dict  # its keyword arguments (pretrained weights are never needed again)
    input_size: int = 0  # visual: crop side the network takes
    mean: list[float] = Field(default_factory=list)  # visual: inside the network, recorded here too
    std: list[float] = Field(default_factory=list)
    faces: FaceConfig = FaceConfig()  # visual: how crops are cut
    sampling: SamplingConfig | None = None  # visual: how training videos were sampled (None: not recorded)
    audio: AudioConfig = AudioConfig()  # audio: sample rate, windows, aggregation, voice gate
    calibration: Calibration = Calibration()
    thresholds: Thresholds = Thresholds()
    operating_point: dict = Field(default_factory=dict)
    training: dict = Field(default_factory=dict)
    metrics: dict = Field(default_factory=dict)
    version: str = ""  # content hash of the weights, set on save


def save_bundle(folder: str | Path, net: torch.nn.Module, meta: BundleMeta) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    data = save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
    weights.write_bytes(data)  # the usual file modes (safetensors' save_file leaves 0600)
    meta = meta.model_copy(update={"version": hashlib.sha256(data).hexdigest()[:16]})
    (folder / "bundle.json").write_text(meta.model_dump_json(indent=2))
    from detector.card import write_card  # the card reads the bundle back

    write_card(folder)
    return folder


def bundle_meta(folder: str | Path) -> BundleMeta:
    """A bundle's metadata alone (no weights read)."""
    folder = Path(folder)
    if not (folder / "bundle.json").is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint bundle (no bundle.json)")
    return BundleMeta.model_validate_json((folder / "bundle.json").read_text())


def load_bundle(folder: str | Path, device: str | torch.device = "cpu",
                runtime: str = "torch") -> tuple[torch.nn.Module, BundleMeta]:
    """The network and its metadata; `runtime="onnx"` runs the exported model.onnx instead."""
    folder = Path(folder)
    meta = bundle_meta(folder)
    if runtime == "onnx":
        from detector.export import OnnxNet

        if not (folder / "model.onnx").is_file():
            where = "copy the bundle to a folder of your own and run `deepfake-detect export --checkpoint` on the copy" \
                if folder.resolve().is_relative_to(STARTER.resolve()) else f"run `deepfake-detect export --checkpoint {folder}`"
            raise FileNotFoundError(f"{folder}: no model.onnx; {where}")
        return OnnxNet(folder / "model.onnx"), meta
    net = create_model(meta.family, **meta.model)  # builds without downloading: weights come next
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    if meta.modality == "visual":  # ~1.6x faster convolutions on CPU (bench/batch_size.py), the usual choice on GPU
        net = net.to(memory_format=torch.channels_last)
    return net.to(device).eval(), meta
