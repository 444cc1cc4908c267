"""Model inputs from many uploads share model calls: each result goes back to its upload's callback."""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np


class SharedBatches:
    """Collects inputs from any number of uploads; a full batch runs at once, `flush` runs the rest.

    `run` maps a list of inputs to one output per input. Thread-safe, so a server's threads can add
    while its inference loop runs the batches that are `ready`. With `eager` off, `add` never runs the
    model itself: the thread that adds (a server's hand-off thread) goes straight on to its next upload.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], batch_size: int,
                 on_batch: Callable[[int], None] | None = None, eager: bool = True):
        """`on_batch` hears every batch's size (metrics, benchmarks)."""
        self.run, self.batch_size, self.on_batch, self.eager = run, max(1, batch_size), on_batch, eager
        self._items: list[tuple[np.ndarray, Callable[[float], None]]] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        self._model = threading.Lock()  # one model call at a time

    def add(self, x: np.ndarray, done: Callable[[float], None]) -> None:
        with self._lock:
            if not self._items:
                self._oldest = time.monotonic()
            self._items.append((x, done))
            full = len(self._items) >= self.batch_size
        if full and self.eager:
            self._run_one()

    def pending(self) -> int:
        return len(self._items)

    def waited(self) -> float:
        """Seconds the oldest pending input has waited (0 when none)."""
        return time.monotonic() - self._oldest if self._items else 0.0

    def ready(self, max_wait_s: float) -> bool:
        """A batch is full, or the oldest input waited `max_wait_s`."""
        return len(self._items) >= self.batch_size or (bool(self._items) and self.waited() >= max_wait_s)

    def flush(self) -> None:
        while self._items:
            self._run_one()

    def _run_one(self) -> None:
        with self._model:
            with self._lock:
                batch, self._items = self._items[: self.batch_size], self._items[self.batch_size :]
                self._oldest = time.monotonic()
            if not batch:
                return
            out = self.run([x for x, _ in batch])
            if self.on_batch:
                self.on_batch(len(batch))
        for (_, done), y in zip(batch, out):
            done(float(y))
