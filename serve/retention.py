"""Retention and erasure: upload bytes, face crops and Verdicts go when their time is up (or on
request); the audit trail keeps only that something was erased, when, by whom and why."""

from __future__ import annotations

import logging
import threading
import time

from serve.config import RetentionConfig
from serve.files import FileStore
from serve.store import Store

log = logging.getLogger("serve.retention")
DAY = 86_400.0


def erase(store: Store, files: FileStore, upload: dict, what: list[str], actor: str, why: str) -> list[str]:
    """Erase `what` (bytes, crops, verdict) of one upload, idempotently; returns what was newly erased."""
    if "bytes" in what:
        with files.lock(upload["sha256"]):  # no upload of the same bytes can slip in between
            if not store.uploads.bytes_needed(upload["sha256"], but=upload["id"]):
                files.erase(upload["sha256"])
            erased = store.uploads.mark_erased(upload["id"], what, actor, why)
    else:
        erased = store.uploads.mark_erased(upload["id"], what, actor, why)
    if "crops" in what:
        files.erase_evidence(upload["id"])
    return erased


def sweep(store: Store, files: FileStore, cfg: RetentionConfig, now: float | None = None) -> dict[str, int]:
    """Erase everything older than its retention period; returns how many uploads lost what."""
    now = time.time() if now is None else now
    counts = {}
    for what, days in (("bytes", cfg.upload_bytes_days), ("crops", cfg.crops_days), ("verdict", cfg.verdicts_days)):
        n = 0
        for up in store.uploads.expired(what, before=now - days * DAY) if days is not None else []:
            n += bool(erase(store, files, up, [what], "retention", f"{what} are kept {days:g} days"))
        counts[what] = n
    return counts


class Sweeper:
    """Runs `sweep` at start and then every `interval_s`."""

    def __init__(self, store: Store, files: FileStore, cfg: RetentionConfig):
        self.store, self.files, self.cfg = store, files, cfg
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="retention")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = sweep(self.store, self.files, self.cfg)
                if any(counts.values()):
                    log.info("retention erased %s", counts)
            except Exception:
                log.exception("retention sweep")
            self._stop.wait(self.cfg.interval_s)
