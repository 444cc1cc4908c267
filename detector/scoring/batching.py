"""Model inputs from many uploads share model calls: each input gets its output, or the call's error."""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


class Batcher:
    """A loop thread runs a batch once `batch_size` inputs wait or the oldest waited `max_wait_s`.

    `run` maps a list of inputs to one output per input. Every input's `done` is called exactly once,
    with its output or with the exception that ended its batch (a length mismatch is one), on a hooks
    thread: the loop thread only runs the model. The loop thread lives while inputs wait.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], batch_size: int, max_wait_s: float = 0.02,
                 on_batch: Callable[[int], None] | None = None):
        """`on_batch` hears every batch's size (metrics, benchmarks)."""
        self.run, self.batch_size, self.max_wait_s, self.on_batch = run, max(1, batch_size), max_wait_s, on_batch
        self._items: list[tuple[np.ndarray, Callable[[float | BaseException], None], float]] = []  # x, done, added
        self._looping = False
        self._cond = threading.Condition()
        self._hooks = ThreadPoolExecutor(1, thread_name_prefix="hooks")

    def add(self, x: np.ndarray, done: Callable[[float | BaseException], None]) -> None:
        with self._cond:
            self._items.append((x, done, time.monotonic()))
            if not self._looping:
                self._looping = True
                threading.Thread(target=self._loop, daemon=True, name="batches").start()
            self._cond.notify()

    def flush(self) -> None:
        """Run what waits now, without waiting for more inputs (the end of a batch job)."""
        with self._cond:
            self._items = [(x, done, -math.inf) for x, done, _ in self._items]
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._items and len(self._items) < self.batch_size:
                    left = self._items[0][2] + self.max_wait_s - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._items:
                    self._looping = False
                    return
                batch, self._items = self._items[: self.batch_size], self._items[self.batch_size :]
            try:
                out = self.run([x for x, _, _ in batch])
                if len(out) != len(batch):
                    raise RuntimeError(f"the model gave {len(out)} outputs for {len(batch)} inputs")
                results: list = [float(y) for y in out]
            except Exception as e:  # every input of the batch hears it
                log.exception("model batch of %d", len(batch))
                results = [e] * len(batch)
            if self.on_batch:
                self.on_batch(len(batch))
            self._hooks.submit(_answer, [done for _, done, _ in batch], results)


def _answer(dones: list[Callable], results: list) -> None:
    for done, y in zip(dones, results, strict=True):
        try:
            done(y)
        except Exception:
            log.exception("a batch result's hook")
