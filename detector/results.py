"""results.jsonl: one Verdict or error record per line, appended and flushed as uploads finish.

A crash can only cut the last line; opening the file again drops that partial line, so the file
never stays corrupt and a rerun skips every upload whose id is already there.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel


def part_path(out: str | Path, rank: int) -> Path:
    """Where one rank of a distributed run writes (see `detector.distributed`)."""
    return Path(out).with_name(f"{Path(out).name}.rank{rank}")


def _parts(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.name}.rank*"))


def _complete_lines(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]  # a line cut off by a crash is dropped


def merge_parts(out: str | Path) -> None:
    """Append every rank's part file to `out` and remove the parts."""
    out = Path(out)
    with out.open("ab") as f:
        for part in _parts(out):
            f.write(_complete_lines(part))
            f.flush()
            part.unlink()


class ResultsFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.is_file():
            keep = _complete_lines(self.path)
            if len(keep) != self.path.stat().st_size:
                self.path.write_bytes(keep)
        for source in [self.path] * self.path.is_file() + _parts(self.path):  # parts: an unfinished distributed run
            for line in _complete_lines(source).decode().splitlines():
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
