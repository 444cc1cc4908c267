"""Progress for long commands: a live bar on a terminal; elsewhere (a log file, a pipe, CI) plain
lines at a steady pace, so that silence never means "stuck"."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "-/s")


@dataclass
class _Count:
    description: str
    total: int
    started: float
    printed: float
    done: int = field(default=0)


class LineProgress:
    """The subset of rich's Progress the commands use, written as lines: after the first item, at most
    one line every `every_s` seconds, and after the last item."""

    def __init__(self, console: Console, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.console, self.every_s, self.clock = console, every_s, clock
        self.tasks: list[_Count] = []

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def add_task(self, description: str, total: int) -> int:
        now = self.clock()
        self.tasks.append(_Count(description, total, now, now))
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: int = 1) -> None:
        task, now = self.tasks[task_id], self.clock()
        task.done += advance
        if task.done == advance or task.done >= task.total or now - task.printed >= self.every_s:
            task.printed = now
            print(self.line(task, now), file=self.console.file, flush=True)

    @staticmethod
    def line(task: _Count, now: float) -> str:
        elapsed = now - task.started
        rate = task.done / elapsed if elapsed > 0 else 0.0
        left = f"{(task.total - task.done) / rate:.0f} s left" if rate else "time left unknown"
        return f"{task.description}: {task.done}/{task.total} in {elapsed:.0f} s, {rate:.2f}/s, {left}"


def progress(console: Console) -> Progress | LineProgress:
    """A bar when `console` is a terminal, lines otherwise."""
    if not console.is_terminal:
        return LineProgress(console)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    RateColumn(), TimeRemainingColumn(), console=console, transient=True)
