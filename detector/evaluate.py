"""Evaluate a bundle on a dataset through the Scorer that scores uploads: face crops of sampled frames
for a visual bundle (or the images themselves, for datasets of crops), voice-gated sliding windows
for an audio one; metrics per crop/window, per video/file and per upload."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from detector.bundle import BundleMeta
from detector.config import MediaLimits, SamplingConfig
from detector.datasets import Row
from detector.frontend.faces import Face, FrameFaces, cut_crop
from detector.frontend.scan import Scan, error_record, file_id
from detector.frontend.media import MediaError, probe, read_image
from detector.scoring.scorer import ErrorRecord, Scorer
from detector.metrics import by_video, report_with_ci
from detector.version import software, utc_now
from detector.plots import write_plots


def _crop_scan(path: str, size: int, limits: MediaLimits) -> Scan:
    """An image of a face-crop dataset as a scan: the whole picture is its one face."""
    out = Scan(path)
    try:
        out.sha256, out.info, image = file_id(path), probe(path, limits), read_image(path, limits)
    except MediaError as e:
        out.error = error_record(e)
        return out
    h, w = image.shape[:2]
    box = np.array([0, 0, w, h])
    face = Face(box=box.astype(float), prob=1.0, landmarks=np.zeros((5, 2)), crop_box=box,
                crop=cut_crop(image, box, size), track=0)
    out.frames = [FrameFaces(0, 0.0, w, h, [face])]
    return out


def _items(scorer: Scorer, modality: str, rows: list[Row], crops_as_is: bool, workers: int, out: Path, status: dict,
           progress):
    """Every upload through the Scorer (its Verdicts kept in verdicts.jsonl): per-crop or per-window
    scores keyed by video (crop datasets: group and label, as the crop cache keys them), and upload scores."""
    by_path = {r.path: r for r in rows}
    if crops_as_is:
        size = scorer.settings.faces.crop_size
        records = scorer.score_scans(_crop_scan(p, size, scorer.settings.limits) for p in by_path)
    else:
        records = scorer.score_many(list(by_path), workers=workers)
    item_rows, keys, probs, upload = [], [], [], {}
    with open(out / "verdicts.jsonl", "w") as kept:
        for v in records:
            kept.write(v.model_dump_json() + "\n")
            if progress:
                progress()
            if isinstance(v, ErrorRecord):
                status["error"] += 1
                continue
            result = v.visual if modality == "visual" else v.audio
            scores = ([f.score for t in result.faces for f in t.frames] if modality == "visual"
                      else [s.score for s in result.segments if s.score is not None]) if result else []
            status["ok" if scores else "no_signal"] += 1
            row = by_path[v.path]
            item_rows += [row] * len(scores)
            keys += [f"{row.group}:{row.label}" if crops_as_is else v.path] * len(scores)
            probs += scores
            if v.score is not None:
                upload[v.path] = v.score
    return item_rows, keys, np.asarray(probs), upload


LEVELS = {"visual": ("frame", "video"), "audio": ("window", "file")}  # report keys, per modality


def evaluate(bundle: str | Path, rows: list[Row], out: str | Path, frames: int | None = None, device: str = "auto",
             crops_as_is: bool = False, workers: int = 2, progress=None) -> dict:
    """Metrics of a bundle on `rows` per frame (face crop or voiced audio window), per video/file
    (frame scores averaged, as DeepfakeBench does) and per upload (the Scorer's own score)."""
    meta = BundleMeta.model_validate_json((Path(bundle) / "bundle.json").read_text())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status: dict = defaultdict(int)
    scorer = Scorer(**{"visual": None, "audio": None, meta.modality: bundle}, device=device,
                    sampling=frames and SamplingConfig(frames=frames))  # None: as the bundle was trained
    item_rows, videos, probs, upload = _items(scorer, meta.modality, rows, crops_as_is, workers, out, status, progress)
    labels = np.array([r.label for r in item_rows], int)
    vs, vy, vkeys = by_video(probs, labels, videos)
    source_of = {v: r.source for r, v in zip(item_rows, videos)}
    t = meta.thresholds.likely_fake
    by_row = {r.path: r for r in rows}
    per_source = {}  # a fake source against every real video; a real source on its own (its FPR)
    for source in sorted(set(source_of.values())):
        own = np.array([source_of[k] == source for k in vkeys])
        mask = own | (vy == 0) if vy[own].any() else own
        per_source[source] = report_with_ci(vy[mask], vs[mask], np.asarray(vkeys)[mask], t)
    item, whole = LEVELS[meta.modality]  # what a score is given to, and what its scores are averaged over
    report = {
        "created_at": utc_now(), "software": software(),
        "bundle": str(bundle), "modality": meta.modality, "model_version": meta.version,
        "frames_per_video": scorer.settings.sampling.frames if meta.modality == "visual" else None,
        "files": dict(status) | {"total": len(rows)},
        "levels": [item, whole],
        item: report_with_ci(labels, probs, videos, t),  # intervals resample whole videos/files
        whole: report_with_ci(vy, vs, vkeys, t),
        "upload": report_with_ci([by_row[p].label for p in upload], list(upload.values()), list(upload), t)
        if upload else None,
        f"per_source_{whole}": per_source,
        f"{whole}s": [{whole: k, "label": int(y), "score": round(float(s), 5), "source": source_of[k]}
                      for k, y, s in zip(vkeys, vy, vs)],
    }
    report["plots"] = write_plots(out, meta.modality, {f"{item}s": (labels, probs), f"{whole}s": (vy, vs)},
                                  meta.thresholds.model_dump())  # file names, beside this report
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report

