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
    with its output or with the exception that ended its run (a length mismatch is one), on a hooks
    thread: the loop thread only runs the model. When a batch fails, its inputs are run once more one
    at a time, so one bad input or a batch too big for the device fails only what it must. The loop
    thread lives while inputs wait; `running_for()` says how long the model call under way has run.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], batch_size: int, max_wait_s: float = 0.02,
                 on_batch: Callable[[int], None] | None = None):
        """`on_batch` hears every batch's size (metrics, benchmarks)."""
        self.run, self.batch_size, self.max_wait_s, self.on_batch = run, max(1, batch_size), max_wait_s, on_batch
        self._items: list[tuple[np.ndarray, Callable[[float | BaseException], None], float]] = []  # x, done, added
        self._looping = False
        self._started: float | None = None  # when the model call under way began (monotonic)
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

    def close(self, timeout_s: float = 60) -> None:
        """Run what waits, answer it, and stop the hooks thread (waiting `timeout_s` at most for a model call
        under way): nothing may be added afterwards."""
        self.flush()
        with self._cond:
            self._cond.wait_for(lambda: not self._looping, timeout_s)
        self._hooks.shutdown(wait=not self._looping)

    def running_for(self) -> float:
        """Seconds the model call under way has run (0 when idle): a heartbeat for readiness checks."""
        started = self._started
        return 0.0 if started is None else time.monotonic() - started

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
                    self._cond.notify_all()  # close() may be waiting
                    return
                batch, self._items = self._items[: self.batch_size], self._items[self.batch_size :]
            xs = [x for x, _, _ in batch]
            try:
                results: list = self._call(xs)
            except Exception as e:  # noqa: BLE001 - once more one by one; each input hears its own outcome
                log.exception("model batch of %d", len(batch))
                results = [e] if len(xs) == 1 else [self._alone(x) for x in xs]
            if self.on_batch:
                self.on_batch(len(batch))
            self._hooks.submit(_answer, [done for _, done, _ in batch], results)


    def _call(self, xs: list[np.ndarray]) -> list[float]:
        self._started = time.monotonic()
        try:
            out = self.run(xs)
        finally:
            self._started = None
        if len(out) != len(xs):
            raise RuntimeError(f"the model gave {len(out)} outputs for {len(xs)} inputs")
        return [float(y) for y in out]

    def _alone(self, x: np.ndarray) -> float | BaseException:
        try:
            return self._call([x])[0]
        except Exception as e:  # noqa: BLE001 - handed to this input's hook
            return e


def _answer(dones: list[Callable], results: list) -> None:
    for done, y in zip(dones, results, strict=True):
        try:
            done(y)
        except Exception:
            log.exception("a batch result's hook")
