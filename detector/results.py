"""results.jsonl: one Verdict or error record per line, appended and flushed as uploads finish.

A crash can only cut the last line; opening the file again drops that partial line, so the file
never stays corrupt and a rerun skips every upload whose id is already there.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel


class ResultsFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.is_file():
            data = self.path.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]  # drop a line cut off by a crash
            if len(keep) != len(data):
                self.path.write_bytes(keep)
            for line in keep.decode().splitlines():
                rec = json.loads(line)
                if rec.get("id") and "decision" in rec:  # errors are retried on the next run
                    self.done.add(rec["id"])
        self._f = None

    def __enter__(self) -> "ResultsFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a")
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def append(self, record: BaseModel) -> None:
        self._f.write(record.model_dump_json() + "\n")
        self._f.flush()
        if getattr(record, "decision", None):
            self.done.add(record.id)

    def write_csv(self, path: str | Path) -> None:
        """Latest record per upload, flattened."""
        latest: dict[str, dict] = {}
        for line in self.path.read_text().splitlines():
            rec = json.loads(line)
            latest[rec.get("id") or rec["path"]] = rec
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path", "media_type", "score", "decision", "visual_score", "audio_score", "error"])
            for rec in latest.values():
                w.writerow([rec.get("id"), rec["path"], rec.get("media_type"), rec.get("score"), rec.get("decision"),
                            (rec.get("visual") or {}).get("score"), (rec.get("audio") or {}).get("score"),
                            (rec.get("error") or {}).get("message")])
