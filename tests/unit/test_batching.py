"""Model batches shared across uploads: flushed on size or wait, one answer per input, errors fanned out."""

from __future__ import annotations

import threading
import time

import numpy as np

from detector.scoring.batching import Batcher


class Answers:
    """Collects `done` calls; `wait(n)` blocks until n arrived."""

    def __init__(self):
        self.got: dict = {}
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def done(self, key):
        def put(y):
            with self.cond:
                self.got[key] = y
                self.threads.add(threading.current_thread().name)
                self.cond.notify_all()
        return put

    def wait(self, n: int, timeout: float = 30) -> dict:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout), self.got
        return self.got


def test_inputs_of_many_uploads_share_batches_and_each_gets_its_own_output():
    calls, sizes, model_threads = [], [], set()

    def run(xs):
        calls.append(len(xs))
        model_threads.add(threading.current_thread().name)
        return np.array([x.sum() for x in xs])

    batches = Batcher(run, batch_size=4, max_wait_s=0.2, on_batch=sizes.append)
    answers = Answers()
    started = time.monotonic()
    for upload, n in (("a", 3), ("b", 3), ("c", 1)):
        for i in range(n):
            batches.add(np.full(2, 10 * ord(upload) + i), answers.done((upload, i)))
    got = answers.wait(7)
    assert time.monotonic() - started >= 0.2  # the last three ran once the oldest of them had waited
    assert calls == sizes == [4, 3]  # a's three and b's first ran together, at once
    assert got == {(u, i): 2 * (10 * ord(u) + i) for u, n in (("a", 3), ("b", 3), ("c", 1)) for i in range(n)}
    assert not answers.threads & model_threads  # hooks run off the model's thread


def test_a_batch_that_raises_is_run_again_one_input_at_a_time_and_only_the_bad_input_fails():
    calls = []

    def run(xs):
        calls.append(len(xs))
        if any(x[0] < 0 for x in xs):
            raise RuntimeError("CUDA out of memory")
        return np.ones(len(xs))

    batches = Batcher(run, batch_size=3, max_wait_s=0.01)
    answers = Answers()
    for i, x in enumerate([1, -1, 1, 1, 1]):
        batches.add(np.array([x]), answers.done(i))
    got = answers.wait(5)
    assert isinstance(got[1], RuntimeError) and str(got[1]) == "CUDA out of memory"
    assert [got[i] for i in (0, 2, 3, 4)] == [1.0] * 4
    assert calls == [3, 1, 1, 1, 2]  # the failed batch, its inputs alone, then the next batch


def test_a_model_that_answers_the_wrong_number_of_outputs_fails_its_batch():
    batches = Batcher(lambda xs: np.ones(len(xs) - 1), batch_size=2, max_wait_s=0.01)
    answers = Answers()
    for i in range(2):
        batches.add(np.zeros(1), answers.done(i))
    got = answers.wait(2)
    assert all(isinstance(y, RuntimeError) and "0 outputs for 1 inputs" in str(y) for y in got.values())


def test_a_slow_hook_does_not_hold_up_the_model():
    second_ran = threading.Event()
    calls = []

    def run(xs):
        calls.append(len(xs))
        if len(calls) == 2:
            second_ran.set()
        return np.zeros(len(xs))

    batches = Batcher(run, batch_size=1, max_wait_s=0)
    answers = Answers()
    batches.add(np.zeros(1), lambda y: answers.done("first")(second_ran.wait(10)))  # a store write, say
    batches.add(np.zeros(1), answers.done("second"))
    assert answers.wait(2) == {"first": True, "second": 0.0}


def test_flush_runs_a_partly_filled_batch_without_its_wait():
    calls = []
    batches = Batcher(lambda xs: calls.append(len(xs)) or np.zeros(len(xs)), batch_size=8, max_wait_s=600)
    answers = Answers()
    for i in range(3):
        batches.add(np.zeros(1), answers.done(i))
    batches.flush()
    assert len(answers.wait(3)) == 3 and calls == [3]


def test_running_for_says_how_long_the_model_call_under_way_has_run():
    release, entered = threading.Event(), threading.Event()
    batches = Batcher(lambda xs: entered.set() or release.wait(30) and np.zeros(len(xs)), batch_size=1, max_wait_s=0)
    answers = Answers()
    assert batches.running_for() == 0.0
    batches.add(np.zeros(1), answers.done(0))
    assert entered.wait(10)
    time.sleep(0.05)  # not a race: the call cannot end before `release` is set below
    assert batches.running_for() >= 0.05
    release.set()
    assert answers.wait(1) == {0: 0.0} and batches.running_for() == 0.0


def test_close_answers_what_waits_then_stops():
    batches = Batcher(lambda xs: np.ones(len(xs)), batch_size=8, max_wait_s=600)
    answers = Answers()
    for i in range(3):
        batches.add(np.zeros(1), answers.done(i))
    batches.close()
    assert answers.got == {0: 1.0, 1: 1.0, 2: 1.0}  # answered before close returned
