"""results.jsonl: one Verdict or error record per input path, appended and flushed as uploads finish.

A crash can only cut the last line; opening the file again drops that partial line, so the file
never stays corrupt. A rerun skips every path whose record is a Verdict of the same bytes by the
same model versions under the same settings, and every one whose bytes failed in a way they always will (unsupported,
corrupt, too large) unless asked to retry errors; a path scored again replaces its earlier record,
so the file keeps one record per path, also where two paths hold the same bytes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel

FINAL_ERRORS = {"unsupported", "corrupt", "too_large"}  # the same bytes fail the same way on every try


def part_path(out: str | Path, rank: int) -> Path:
    """Where one rank of a distributed run writes (see `detector.scoring.distributed`)."""
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


def signature(models: list[dict], settings: str | None) -> str:
    """Which model versions a Verdict came from, under which settings (`Scorer.settings_id`; older results
    files call the modality `kind` and carry no settings)."""
    return ";".join(sorted(f"{m.get('modality', m.get('kind'))}:{m['version']}" for m in models)) + f"|{settings}"


ANY_MODEL = "*"  # a final error: the same bytes fail the same way whichever models score them


class ResultsFile:
    def __init__(self, path: str | Path, retry_errors: bool = False):
        self.path = Path(path)
        self.retry_errors = retry_errors
        self.latest: dict[str, str] = {}  # path -> its newest record's line
        data = _complete_lines(self.path) if self.path.is_file() else b""
        lines = data.decode().splitlines()
        for line in lines:
            self.latest[json.loads(line)["path"]] = line
        if len(self.latest) < len(lines) or self.path.is_file() and len(data) != self.path.stat().st_size:
            self._rewrite()  # a line cut by a crash, or a path scored twice by a run that crashed
        self.done: dict[str, tuple[str, str]] = {}  # path -> (bytes' id, `signature` or ANY_MODEL)
        parts = [json.loads(line) for part in _parts(self.path) for line in _complete_lines(part).decode().splitlines()]
        for rec in [*map(json.loads, self.latest.values()), *parts]:  # parts: an unfinished distributed run
            self._mark(rec)
        self._f = None
        self._replaced = False

    def _mark(self, rec: dict) -> None:
        final = not self.retry_errors and (rec.get("error") or {}).get("reason") in FINAL_ERRORS
        if rec.get("id") and ("decision" in rec or final):
            self.done[rec["path"]] = (rec["id"], ANY_MODEL if final else signature(rec.get("models") or [], rec.get("settings")))
        else:  # a newer record that settles nothing (a timeout, say): scored again next time
            self.done.pop(rec["path"], None)

    def is_done(self, path: str | Path, file_id: str, scored_by: str) -> bool:
        """Whether `path` has a record for these bytes (`file_id`) by these models and settings (`scored_by`,
        a `signature`)."""
        found = self.done.get(str(path))
        return found is not None and found[0] == file_id and found[1] in (ANY_MODEL, scored_by)

    def _rewrite(self) -> None:
        self.path.write_text("".join(line + "\n" for line in self.latest.values()))

    def __enter__(self) -> "ResultsFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a")
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()
        if self._replaced:  # uploads scored again: their earlier records go
            self._rewrite()

    def append(self, record: BaseModel) -> None:
        line = record.model_dump_json()
        self._f.write(line + "\n")
        self._f.flush()
        self._replaced |= record.path in self.latest
        self.latest[record.path] = line
        self._mark(json.loads(line))

    def write_csv(self, path: str | Path) -> None:
        """One row per path, flattened."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path", "media_type", "score", "decision", "visual_score", "audio_score", "models",
                        "error_type", "error", "scored_at", "software"])
            for rec in map(json.loads, self.latest.values()):
                error = rec.get("error") or {}
                w.writerow([rec.get("id"), rec["path"], rec.get("media_type"), rec.get("score"), rec.get("decision"),
                            (rec.get("visual") or {}).get("score"), (rec.get("audio") or {}).get("score"),
                            _models(rec.get("models") or []), error.get("reason"), error.get("message"),
                            rec.get("scored_at"), rec.get("software")])


def _models(models: list[dict]) -> str:
    """Which model versions decided, at which thresholds: `visual:starter-face@0a1b review=0.4 likely_fake=0.7`
    (older results files call the modality `kind`)."""
    return "; ".join(f"{m.get('modality', m.get('kind'))}:{m['name']}@{m['version']} review={m['thresholds']['review']:.4g} "
                     f"likely_fake={m['thresholds']['likely_fake']:.4g}" for m in models)
