"""Export a bundle's network to ONNX, and run exported networks with onnxruntime (a CPU deployment
path without torch in the hot loop). The ONNX file sits in the bundle beside the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detector.bundle import STARTER, BundleMeta, bundle_meta, load_bundle
from detector.config import ConfigError


def example_input(meta: BundleMeta, batch: int = 2) -> torch.Tensor:
    if meta.modality == "audio":
        return torch.randn(batch, int(meta.audio.window_s * meta.audio.sample_rate)) * 0.1  # (B, T)
    return torch.rand(batch, 3, meta.input_size, meta.input_size)  # (B, 3, S, S)


# families whose forward pass the ONNX exporter cannot trace, and why
NOT_EXPORTABLE = {"voice_probe": "its features (Whisper's log-mel over windows, GE2E over partial utterances, "
                                 "band statistics) take data-dependent shapes; score it with the torch runtime"}


def export_onnx(bundle: str | Path, out: str | Path | None = None) -> Path:
    """Write BUNDLE/model.onnx (batch dynamic; audio length dynamic too) with the bundle's metadata. A
    bundle shipped inside the package is never written to: name `out`, or copy the bundle first."""
    import onnx

    meta = bundle_meta(bundle)
    if meta.family in NOT_EXPORTABLE:
        raise ConfigError(f"{bundle}: a {meta.family} network cannot be exported to ONNX: {NOT_EXPORTABLE[meta.family]}")
    out = Path(out) if out else Path(bundle) / "model.onnx"
    if Path(out).resolve().is_relative_to(STARTER.resolve()):
        raise ConfigError(f"{out}: the shipped bundles are read-only; copy {bundle} to a folder of your own and "
                          "export that, or name --out")
    net, meta = load_bundle(bundle)
    x = example_input(meta)
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    if meta.modality == "audio":
        dims[1] = torch.export.Dim("samples", min=4000, max=10**8)
    torch.onnx.export(net, (x,), str(out), dynamo=True, input_names=["x"], output_names=["logit"],
                      dynamic_shapes=(dims,), external_data=False, verbose=False)  # one self-contained file
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {"bundle.json": meta.model_dump_json()})
    onnx.save(model, str(out))
    return out


class OnnxNet(torch.nn.Module):
    """An exported network behind the torch interface the scorer uses: (B, ...) -> (B,) logits."""

    def __init__(self, path: str | Path):
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.register_buffer("_device", torch.zeros(0))  # the scorer asks where inputs go: the CPU

    def parameters(self, recurse: bool = True):
        yield self._device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"x": np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)})
        return torch.from_numpy(logits)
