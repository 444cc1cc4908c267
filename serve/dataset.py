"""Reviewers' decisions as training data: every decided upload, with its final label, as a folder the
training commands read (`labels.csv` for the `csv` dataset adapter, the media beside it).

An upload's label is its last word: a detection (or an escalation, decided by a senior) says
`confirmed_fake` (1) or `cleared` (0); an appeal `overturned` flips it, `upheld` keeps it. Uploads
with an appeal or escalation still open, and those whose bytes were erased or expired, are left out.
The group is the account the upload came from: the first of the `group_by` metadata fields it carries
(the platform's own `uploader`), else the API key's name; one group's uploads never straddle two splits.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from serve.files import FileStore
from serve.store import Store
from serve.store.public import iso
from serve.store.tables import review_items, uploads

COLUMNS = ["path", "label", "group", "source", "decided_at", "reviewers", "model_score", "model_decision", "upload_id"]
SUFFIX = {"image": ".jpg", "video": ".mp4", "audio": ".wav"}  # the media are read by content; a name helps people
FINAL = {"confirmed_fake": 1, "cleared": 0}
GROUP_BY = ("uploader",)


def group_of(upload: dict, group_by: tuple[str, ...] = GROUP_BY) -> str:
    """The first `group_by` metadata field the upload carries (as `field:value`), else its API key's name."""
    meta = upload["meta"] or {}
    for field in group_by:
        if isinstance(meta.get(field), (str, int)) and str(meta[field]).strip():
            return f"{field}:{str(meta[field]).strip()}"
    return upload["client"] or "anonymous"


def final_labels(items: list[dict]) -> int | None:
    """An upload's label from its decided review items, oldest first; None while undecided or contested."""
    label = None
    for item in items:
        if item["state"] != "decided":
            return None  # an appeal or escalation still open
        if item["kind"] in ("detection", "escalation") and item["label"] in FINAL:
            label = FINAL[item["label"]]
        elif item["kind"] == "appeal" and item["label"] == "overturned" and label is not None:
            label = 1 - label
    return label


def export(store: Store, files: FileStore, out: str | Path, since: float, labels: tuple[int, ...] = (0, 1),
           group_by: tuple[str, ...] = GROUP_BY, progress: Callable[[int], Callable[[], None]] | None = None) -> dict[str, int]:
    """Write `out/media/<upload id>.<ext>` and `out/labels.csv` for uploads decided since `since`; a rerun
    copies only what is missing. `progress(total)` gives the callable to call after each upload. Returns
    counts: exported, undecided (an appeal or escalation open), erased, other_label."""
    out = Path(out)
    (out / "media").mkdir(parents=True, exist_ok=True)
    with store.uploads.reading() as c:
        decided = c.execute(sa.select(review_items.c.upload_id).where(
            (review_items.c.state == "decided") & (review_items.c.decided_at >= since)).distinct()).scalars().all()
        ups = {u.id: u._mapping for u in c.execute(sa.select(uploads).where(uploads.c.id.in_(decided)))}
        items: dict[str, list[dict]] = {}
        for r in c.execute(sa.select(review_items).where(review_items.c.upload_id.in_(decided))
                           .order_by(review_items.c.created_at, review_items.c.id)):
            items.setdefault(r.upload_id, []).append(dict(r._mapping))
    counts = dict.fromkeys(("exported", "undecided", "erased", "other_label"), 0)
    rows = []
    advance = progress(len(decided)) if progress else None
    for upload_id in sorted(decided, key=lambda u: ups[u]["created_at"]):
        up, its = ups[upload_id], items[upload_id]
        label = final_labels(its)
        if label is None:
            counts["undecided"] += 1
        elif up["bytes_erased_at"] is not None or not files.path(up["sha256"]).is_file():
            counts["erased"] += 1  # retention or erasure took the bytes: they are not ours to train on
        elif label not in labels:
            counts["other_label"] += 1
        else:
            suffix = Path(up["filename"] or "").suffix.lower() or SUFFIX.get(up["media_type"], "")
            target = out / "media" / f"{upload_id}{suffix}"
            if not (target.is_file() and target.stat().st_size == up["size"]):
                _place(files.path(up["sha256"]), target)
            decided_items = [i for i in its if i["state"] == "decided"]
            group = group_of(up, group_by)
            rows.append({"path": f"media/{target.name}", "label": label, "group": group,
                         "source": f"reviewed:{group}", "upload_id": upload_id,
                         "decided_at": iso(max(i["decided_at"] for i in decided_items)),
                         "reviewers": len({i["reviewer"] for i in decided_items}),
                         "model_score": up["score"], "model_decision": up["decision"]})
            counts["exported"] += 1
        if advance:
            advance()
    tmp = out / "labels.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "labels.csv")  # a reader never sees half a file
    return counts


def _place(source: Path, target: Path) -> None:
    """A hard link where the store and the folder share a file system (no copy), else a copy."""
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(target)
