"""Progress off a terminal: plain lines at a steady pace."""

from __future__ import annotations

import itertools

from rich.console import Console

from detector.progress import LineProgress


def test_lines_come_after_the_first_item_every_interval_and_after_the_last(capsys):
    clock = itertools.count(0, 4).__next__  # 4 s per call: add_task, then one call per item
    bar = LineProgress(Console(stderr=True), every_s=10, clock=clock)
    task = bar.add_task("scoring", total=8)
    for _ in range(8):
        bar.advance(task)
    assert capsys.readouterr().err.splitlines() == [
        "scoring: 1/8 in 4 s, 0.25/s, 28 s left",
        "scoring: 4/8 in 16 s, 0.25/s, 16 s left",
        "scoring: 7/8 in 28 s, 0.25/s, 4 s left",
        "scoring: 8/8 in 32 s, 0.25/s, 0 s left",
    ]
