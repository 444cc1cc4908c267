"""Evaluate a bundle on a dataset through the real front end: face crops of sampled frames for a
visual bundle, voice-gated sliding windows for an audio one; metrics per crop/window and per file."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from detector.bundle import BundleMeta, load_bundle
from detector.config import SamplingConfig
from detector.datasets import Row
from detector.faces import FaceDetector, resolve_device, scan_files
from detector.audio_scoring import score_chunks
from detector.media import MediaError, iter_audio, read_image
from detector.metrics import binary_report, by_video


@torch.inference_mode()
def crop_logits(net: torch.nn.Module, meta: BundleMeta, crops: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Logits for (S, S, 3) uint8 crops, resized to the bundle's input size, in batches."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.stack(crops[i : i + batch_size])).to(device).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != meta.input_size:  # (B, 3, S, S)
            x = torch.nn.functional.interpolate(x, size=meta.input_size, mode="bilinear", antialias=True)
        out.append(net(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _visual_scores(net, meta: BundleMeta, rows: list[Row], frames: int, device: str, crops_as_is: bool,
                   workers: int, status: dict, progress) -> tuple[list[Row], list[str], np.ndarray]:
    """Per face crop: its row, its video key, its logit."""
    by_path = {r.path: r for r in rows}
    crop_rows: list[tuple[Row, str, np.ndarray]] = []
    if crops_as_is:
        for r in rows:
            try:
                crop_rows.append((r, r.group, read_image(r.path)))
                status["ok"] += 1
            except MediaError:
                status["error"] += 1
            if progress:
                progress()
    else:
        detector = FaceDetector(meta.faces.model_copy(update={"device": device}))
        for scan in scan_files(list(by_path), detector, SamplingConfig(frames=frames), decoders=workers):
            if progress:
                progress()
            if scan.error is not None:
                status["error"] += 1
                continue
            faces = [f.crop for fr in scan.frames for f in fr.faces]
            status["ok" if faces else "no_faces"] += 1
            crop_rows += [(by_path[scan.path], scan.path, c) for c in faces]
    logits = crop_logits(net, meta, [c for _, _, c in crop_rows])
    return [r for r, _, _ in crop_rows], [v for _, v, _ in crop_rows], meta.calibration(logits)


def _audio_scores(net, meta: BundleMeta, rows: list[Row], status: dict, progress) -> tuple[list[Row], list[str], np.ndarray]:
    """Per scored window: its row, its file, its calibrated probability."""
    out_rows, keys, probs = [], [], []
    for r in rows:
        try:
            _, segments = score_chunks(net, meta.calibration, iter_audio(r.path, sample_rate=meta.audio.sample_rate),
                                       meta.audio)
        except MediaError:
            status["error"] += 1
            continue
        finally:
            if progress:
                progress()
        scored = [s.score for s in segments if s.score is not None]
        status["ok" if scored else "no_speech"] += 1
        out_rows += [r] * len(scored)
        keys += [r.path] * len(scored)
        probs += scored
    return out_rows, keys, np.asarray(probs)


def evaluate(bundle: str | Path, rows: list[Row], out: str | Path, frames: int = 32, device: str = "auto",
             crops_as_is: bool = False, workers: int = 2, progress=None) -> dict:
    """Frame (face crop or audio window) and video (file) level metrics of a bundle on `rows`."""
    net, meta = load_bundle(bundle, resolve_device(device))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status: dict = defaultdict(int)
    if meta.kind == "audio":
        item_rows, videos, probs = _audio_scores(net, meta, rows, status, progress)
    else:
        item_rows, videos, probs = _visual_scores(net, meta, rows, frames, device, crops_as_is, workers, status, progress)
    labels = np.array([r.label for r in item_rows], int)
    vs, vy, vkeys = by_video(probs, labels, videos)
    source_of = {v: r.source for r, v in zip(item_rows, videos)}
    t = meta.thresholds.likely_fake
    per_source = {}  # a fake source against every real video; a real source on its own (its FPR)
    for source in sorted(set(source_of.values())):
        own = np.array([source_of[k] == source for k in vkeys])
        mask = own | (vy == 0) if vy[own].any() else own
        per_source[source] = binary_report(vy[mask], vs[mask], t)
    report = {
        "bundle": str(bundle), "kind": meta.kind, "model_version": meta.version,
        "frames_per_video": frames if meta.kind == "visual" else None,
        "files": dict(status) | {"total": len(rows)},
        "frame": binary_report(labels, probs, t),
        "video": binary_report(vy, vs, t),
        "per_source_video": per_source,
        "videos": [{"video": k, "label": int(y), "score": round(float(s), 5), "source": source_of[k]}
                   for k, y, s in zip(vkeys, vy, vs)],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _roc_png(out / "roc.png", labels, probs, vy, vs)
    return report


def _roc_png(path: Path, labels, probs, vy, vs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, y, s in (("frames", labels, probs), ("videos", vy, vs)):
        if 0 < np.sum(y) < len(y):
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{name} (n={len(y)})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
