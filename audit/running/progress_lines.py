"""Progress as plain lines, for a run whose output is not a terminal (a log file, a pipe, a batch job).

`PlainProgress` is a `RunListener` (audit.running.engine) that prints one line when a job starts or finishes, and
while a job runs at most one line every `every` seconds: the job, its stage (e.g. epoch 2/3), the jobs
done, the time elapsed and an estimate of the time left. Nothing else; no colours, no carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def clock_text(seconds: float) -> str:
    """Seconds as h:mm:ss, or m:ss under an hour."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainProgress:
    """Prints a run's progress as lines, at most one every `every` seconds while jobs run."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.every = every
        self.clock = clock
        self.start = clock()
        self.last = -float("inf")
        self.n_todo = 0
        self.n_done = 0
        self.running: dict[str, float] = {}  # job -> its share done, in [0, 1]

    def _print(self, text: str) -> None:
        print(f"[{clock_text(self.clock() - self.start)}] {text}", file=self.stream, flush=True)
        self.last = self.clock()

    def _eta(self) -> str:
        if not self.n_todo:
            return ""
        share = (self.n_done + sum(self.running.values())) / self.n_todo
        if share <= 0:
            return ""
        left = (self.clock() - self.start) * (1 - share) / share
        return f", about {clock_text(left)} left"

    def plan(self, jobs, todo) -> None:
        self.n_todo = len(todo)
        self._print(f"{len(todo)} of {len(jobs)} jobs to run")

    def job_started(self, name: str, index: int, total: int) -> None:
        self.running[name] = 0.0
        self._print(f"{name}: started ({self.n_done}/{self.n_todo} jobs done)")

    def job_progress(self, name: str, stage: str, done: int, total: int) -> None:
        if total:
            self.running[name] = min(1.0, max(0.0, done / total))
        if self.clock() - self.last < self.every:
            return
        where = f"{stage} {done}/{total}" if total else stage
        self._print(f"{name}: {where} ({self.n_done}/{self.n_todo} jobs done{self._eta()})")

    def job_finished(self, name: str, status: str, seconds: float, error: str | None = None) -> None:
        self.running.pop(name, None)
        self.n_done += 1
        first = (error or "").splitlines()[0][:160] if error else ""
        self._print(f"{name}: {status} in {seconds:.1f} s ({self.n_done}/{self.n_todo} jobs done{self._eta()})"
                    + (f" {first}" if first else ""))
