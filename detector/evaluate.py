"""Evaluate a bundle on a dataset through the real front end: face crops of sampled frames for a
visual bundle, voice-gated sliding windows for an audio one; metrics per crop/window and per file."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from detector.bundle import BundleMeta, load_bundle
from detector.config import SamplingConfig
from detector.datasets import Row
from detector.faces import resolve_device
from detector.media import MediaError, read_image
from detector.scoring import ErrorRecord, Scorer, crop_logits
from detector.metrics import binary_report, by_video
from detector.plots import write_plots


def _crop_items(bundle, rows: list[Row], device: str, status: dict, progress):
    """Datasets of ready-made face crops: each image is one crop, its group the video."""
    net, meta = load_bundle(bundle, resolve_device(device))
    items = []
    for r in rows:
        try:
            items.append((r, f"{r.group}:{r.label}", read_image(r.path)))  # as the crop cache keys videos
            status["ok"] += 1
        except MediaError:
            status["error"] += 1
        if progress:
            progress()
    probs = meta.calibration(crop_logits(net, meta, [c for _, _, c in items]))
    return [r for r, _, _ in items], [v for _, v, _ in items], probs, {}


def _scorer_items(bundle, kind: str, rows: list[Row], frames: int, device: str, workers: int, status: dict, progress):
    """Uploads through the production Scorer: its per-crop or per-window scores, and its upload score."""
    by_path = {r.path: r for r in rows}
    scorer = Scorer(**{"visual": None, "audio": None, kind: bundle}, device=device, sampling=SamplingConfig(frames=frames))
    item_rows, keys, probs, upload = [], [], [], {}
    for v in scorer.score_many(list(by_path), workers=workers):
        if progress:
            progress()
        if isinstance(v, ErrorRecord):
            status["error"] += 1
            continue
        result = v.visual if kind == "visual" else v.audio
        scores = ([f.score for t in result.faces for f in t.frames] if kind == "visual"
                  else [s.score for s in result.segments if s.score is not None]) if result else []
        status["ok" if scores else "no_signal"] += 1
        item_rows += [by_path[v.path]] * len(scores)
        keys += [v.path] * len(scores)
        probs += scores
        if v.score is not None:
            upload[v.path] = v.score
    return item_rows, keys, np.asarray(probs), upload


def evaluate(bundle: str | Path, rows: list[Row], out: str | Path, frames: int = 32, device: str = "auto",
             crops_as_is: bool = False, workers: int = 2, progress=None) -> dict:
    """Metrics of a bundle on `rows` per frame (face crop or voiced audio window), per video/file
    (frame scores averaged, as DeepfakeBench does) and per upload (the Scorer's own score)."""
    meta = BundleMeta.model_validate_json((Path(bundle) / "bundle.json").read_text())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status: dict = defaultdict(int)
    if crops_as_is:
        item_rows, videos, probs, upload = _crop_items(bundle, rows, device, status, progress)
    else:
        item_rows, videos, probs, upload = _scorer_items(bundle, meta.kind, rows, frames, device, workers, status, progress)
    labels = np.array([r.label for r in item_rows], int)
    vs, vy, vkeys = by_video(probs, labels, videos)
    source_of = {v: r.source for r, v in zip(item_rows, videos)}
    t = meta.thresholds.likely_fake
    by_row = {r.path: r for r in rows}
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
        "upload": binary_report([by_row[p].label for p in upload], list(upload.values()), t) if upload else None,
        "per_source_video": per_source,
        "videos": [{"video": k, "label": int(y), "score": round(float(s), 5), "source": source_of[k]}
                   for k, y, s in zip(vkeys, vy, vs)],
    }
    levels = ("windows", "files") if meta.kind == "audio" else ("frames", "videos")
    report["plots"] = write_plots(out, meta.kind, dict(zip(levels, ((labels, probs), (vy, vs)))),
                                  meta.thresholds.model_dump())  # file names, beside this report
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report

