"""Progress without a terminal: plain lines (job, stage, jobs done, elapsed, time left), at most one every
10 s while a job runs, and a line at every start and end."""

from __future__ import annotations

import io
import re

from audit.running.progress_lines import PlainProgress, clock_text
from tests.conftest import run_cli


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_lines_are_throttled_and_estimate_the_time_left():
    clock, out = Clock(), io.StringIO()
    p = PlainProgress(out, every=10.0, clock=clock)
    p.plan(["a", "b"], ["a", "b"])
    p.job_started("a", 0, 2)
    for step in range(1, 101):  # 100 steps over 50 s: a line every 10 s, not every step
        clock.now += 0.5
        p.job_progress("a", "train", step, 100)
    p.job_finished("a", "done", 50.0)
    lines = out.getvalue().splitlines()
    progress = [line for line in lines if "train " in line]
    assert 4 <= len(progress) <= 5
    assert progress[0].startswith("[0:10] a: train 20/100 (0/2 jobs done, about ")
    # after 10 s at 20% of the first of two jobs: 10 s for 0.1 of the run, so 1:30 left
    assert progress[0].endswith("about 1:30 left)")
    assert lines[-1] == "[0:50] a: done in 50.0 s (1/2 jobs done, about 0:50 left)"
    assert clock_text(3725) == "1:02:05"


def test_a_run_into_a_pipe_prints_plain_lines(tmp_path):
    res = run_cli("run", "--dataset", "digits", "--variants", "minimal", "--epochs", "1", "--device", "cpu",
                  "--train-size", "300", "--val-size", "200", "--depth", "none", "--rsa-images", "0",
                  "--out", str(tmp_path / "a"), timeout=600)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if re.match(r"^\[\d+:\d\d\] ", line)]
    assert lines and re.search(r"jobs to run$", lines[0])
    assert any(re.search(r": done in \d+\.\d s \(\d+/\d+ jobs done", line) for line in lines)
    assert "\r" not in res.stderr and "\x1b[" not in res.stderr  # no bars, no colours
