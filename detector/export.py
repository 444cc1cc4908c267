"""Export a bundle's network to ONNX, and run exported networks with onnxruntime (a CPU deployment
path without torch in the hot loop). The ONNX file sits in the bundle beside the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detector.bundle import STARTER, BundleMeta, load_bundle
from detector.config import ConfigError


def example_input(meta: BundleMeta, batch: int = 2) -> torch.Tensor:
    if meta.modality == "audio":
        return torch.randn(batch, round(meta.audio.window_s * meta.audio.sample_rate)) * 0.1  # (B, T), one window
    return torch.rand(batch, 3, meta.input_size, meta.input_size)  # (B, 3, S, S)


# audio families exported for the bundle's window length only (what scoring feeds them: a short window is
# tiled to it): their features cut the input into pieces whose count follows its length (GE2E's partials)
FIXED_LENGTH = {"voice_probe"}


def export_onnx(bundle: str | Path, out: str | Path | None = None) -> Path:
    """Write BUNDLE/model.onnx (batch dynamic; audio length dynamic too, except for FIXED_LENGTH families) with
    the bundle's metadata. A bundle shipped inside the package is never written to: name `out`, or copy the
    bundle first."""
    import onnx

    out = Path(out) if out else Path(bundle) / "model.onnx"
    if Path(out).resolve().is_relative_to(STARTER.resolve()):
        raise ConfigError(f"{out}: the shipped bundles are read-only; copy {bundle} to a folder of your own and "
                          "export that, or name --out")
    net, meta = load_bundle(bundle)
    x = example_input(meta)
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    if meta.modality == "audio" and meta.family not in FIXED_LENGTH:
        dims[1] = torch.export.Dim("samples", min=4000, max=10**8)
    # the exporter's graph optimiser (torch 2.14) drops voice_probe's `spec + 1e-10` before a log, so silent
    # frames become -inf, and without it writes a face model that names a tensor twice: optimise all but that one
    torch.onnx.export(net, (x,), str(out), dynamo=True, optimize=meta.family != "voice_probe",
                      input_names=["x"], output_names=["logit"],
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

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: not a warning per node it cannot fold on loading
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.register_buffer("_device", torch.zeros(0))  # the scorer asks where inputs go: the CPU

    def parameters(self, recurse: bool = True):
        yield self._device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"x": np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)})
        return torch.from_numpy(logits)
