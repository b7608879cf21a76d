"""The records the study store hands out: a study, an observer, a session, a scheduled trial, a
stored answer and an observer's progress, and the checks of what the browser sends with an answer.
Plain frozen dataclasses and pure checks; no database, no UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from human_study.errors import StudyError

RT_SOURCES = ("client", "server")  # browser-measured, or the server's time since the trial was shown
MAX_RT_MS = 24 * 3600 * 1000.0  # the longest response time a response may hold
#: the phases of a trial, in the order an observer sees them; the browser measures each (ms)
PHASES = ("iti", "fixation", "stimulus", "mask")


@dataclass(frozen=True)
class Study:
    id: str
    name: str
    created_at: datetime
    folder: Path
    audit_path: str | None
    config: dict

    @property
    def question(self) -> str:
        return self.config.get("question", "harder")

    @property
    def n_practice(self) -> int:
        return int(self.config["n_practice"])

    @property
    def n_trials(self) -> int:
        return int(self.config["n_trials"])

    @property
    def n_catch(self) -> int:
        return int(self.config.get("n_catch", 0))

    @property
    def n_total(self) -> int:
        return self.n_practice + self.n_trials + self.n_catch

    @property
    def size(self) -> int:
        return int(self.config.get("size", 224))


@dataclass(frozen=True)
class Observer:
    """A person taking part in a study, known by a code."""

    id: int
    study_id: str
    code: str
    ordinal: int
    seed: int
    created_at: datetime
    finished_at: datetime | None
    consented_at: datetime | None = None
    ended_reason: str | None = None  # "attention": ended early by the attention-check policy

    @property
    def subject(self) -> str:
        """The anonymous name used in exports: subject-01, subject-02, ..."""
        return f"subject-{self.ordinal:02d}"

    @classmethod
    def from_row(cls, row: Mapping) -> Observer:
        """From a row of the observers table."""
        return cls(
            int(row["id"]),
            row["study_id"],
            row["code"],
            int(row["ordinal"]),
            int(row["seed"]),
            row["created_at"],
            row["finished_at"],
            row.get("consented_at"),
            row.get("ended_reason"),
        )


@dataclass(frozen=True)
class Session:
    id: int
    observer_id: int
    index: int  # 1 for the observer's first session, 2 after the first refresh, ...
    started_at: datetime


@dataclass(frozen=True)
class Calibration:
    """A screen's scale and the viewing distance, from the credit-card calibration."""

    px_per_mm: float  # CSS pixels per millimetre
    viewing_distance_mm: float


@dataclass(frozen=True)
class ScheduledTrial:
    """One trial as an observer sees it. `number` counts within its block (practice or test)."""

    trial_id: int
    position: int
    n_total: int
    kind: str
    number: int
    block_size: int
    left_file: str
    right_file: str
    trivial_side: str
    correct_side: str

    @property
    def feedback(self) -> bool:
        return self.kind == "practice"


@dataclass(frozen=True)
class Recorded:
    """The stored answer to a trial; `created` is False when it had been stored before."""

    response_id: int
    trial_id: int
    position: int
    choice: str
    correct: bool
    correct_side: str
    created: bool
    finished: bool


@dataclass(frozen=True)
class Progress:
    n_answered: int
    n_total: int
    n_practice: int
    n_practice_answered: int
    n_test: int
    n_test_answered: int
    ended: bool = False  # ended early by the attention-check policy

    @property
    def finished(self) -> bool:
        return self.ended or self.n_answered >= self.n_total

    @property
    def in_practice(self) -> bool:
        return self.n_practice_answered < self.n_practice


def check_phases(phases: object) -> dict | None:
    """The browser's phase durations as stored: {name: ms} with names from PHASES (rounded to
    0.1 ms); an entry that is not a finite duration up to MAX_RT_MS is dropped."""
    if phases is None:
        return None
    if not isinstance(phases, dict):
        raise StudyError(f"phases must be a mapping of phase name to milliseconds, got {type(phases).__name__}")
    kept = {}
    for name in PHASES:
        value = phases.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if 0 <= value <= MAX_RT_MS:
                kept[name] = round(float(value), 1)
    return kept or None


def check_rt(rt_ms, rt_source, shown_at):
    """(rt_ms, rt_source) as stored, checked: a browser time in [0, MAX_RT_MS] ms, or none."""
    if shown_at is not None and (not isinstance(shown_at, datetime) or shown_at.tzinfo is None):
        raise StudyError("shown_at must be a timezone-aware datetime")
    if rt_ms is None:
        if rt_source not in (None, "server"):
            raise StudyError("rt_source without rt_ms makes no sense; pass rt_ms or shown_at")
        return None, None
    if isinstance(rt_ms, bool) or not isinstance(rt_ms, int | float):
        raise StudyError(f"rt_ms must be a number of milliseconds, got {rt_ms!r}")
    rt_ms = float(rt_ms)
    if not math.isfinite(rt_ms) or not 0 <= rt_ms <= MAX_RT_MS:
        raise StudyError(f"rt_ms must be between 0 and {MAX_RT_MS:.0f}, got {rt_ms!r}")
    rt_source = rt_source or "client"
    if rt_source not in RT_SOURCES:
        raise StudyError(f"rt_source must be one of {RT_SOURCES}, got {rt_source!r}")
    return rt_ms, rt_source
