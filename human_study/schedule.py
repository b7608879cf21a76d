"""Each observer's trials: their order and left/right sides, reproducible from a stored seed.

Orders and sides come from SHA-256, not from a random generator, so a seed gives the same
schedule on any platform and version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from human_study.errors import StudyError
from human_study.records import Observer, ScheduledTrial

KINDS = ("practice", "main", "catch")
SIDES = ("left", "right")
SCHEDULE_VERSION = "sha256-v1"  # stored with each study: how its schedules are derived


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from `seed` and labels, stable across Python and numpy versions."""
    text = "|".join(["ddd-study", str(int(seed)), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class ScheduleItem:
    """One trial in one observer's schedule."""

    position: int
    kind: str
    pair_index: int
    trivial_side: str


def observer_schedule(pairs: Iterable, seed: int, *, odd_side: str | None = None) -> list[ScheduleItem]:
    """The order and sides of one observer's trials: practice first, then main and catch mixed.

    Within each kind, exactly half of the trials show the trivial image on the left; with an odd
    count one side gets one trial more: `odd_side` if given (the store alternates it between
    observers, which balances a study with an even number of observers), else a side drawn from
    the seed.

    Parameters
    ----------
    pairs : iterable of objects with `kind` and `pair_index` (PairSpec or trial rows)
    seed : the observer's seed
    """
    keys = [(p.kind, int(p.pair_index)) for p in pairs]
    if len(set(keys)) != len(keys):
        raise StudyError("the trial list holds the same (kind, pair_index) twice")
    unknown = {k for k, _ in keys} - set(KINDS)
    if unknown:
        raise StudyError(f"unknown trial kinds {sorted(unknown)}; expected {KINDS}")
    if odd_side is not None and odd_side not in SIDES:
        raise StudyError(f"odd_side must be one of {SIDES}, got {odd_side!r}")

    def rank(purpose: str):
        return lambda key: derive_seed(seed, purpose, *key)

    sides: dict[tuple[str, int], str] = {}
    for kind in KINDS:
        group = sorted((k for k in keys if k[0] == kind), key=rank("side"))
        extra_left = odd_side == "left" if odd_side else derive_seed(seed, "odd", kind) % 2 == 1
        n_left = len(group) // 2 + (len(group) % 2 if extra_left else 0)
        sides.update({k: SIDES[0] if j < n_left else SIDES[1] for j, k in enumerate(group)})
    practice = sorted((k for k in keys if k[0] == "practice"), key=rank("order"))
    test = sorted((k for k in keys if k[0] != "practice"), key=rank("order"))
    return [ScheduleItem(j, k[0], k[1], sides[k]) for j, k in enumerate(practice + test)]


def build_schedule(
    trial_rows: Iterable, observer: Observer, *, question: str = "harder"
) -> list[ScheduledTrial]:
    """An observer's trials in order, from the study's trial rows and the observer's seed.

    The odd left/right trial (with an odd count) goes left for odd ordinals and right for even
    ones, so consecutive observers balance each other.
    """
    rows = list(trial_rows)
    by_key = {(r.kind, int(r.pair_index)): r for r in rows}
    items = observer_schedule(rows, observer.seed, odd_side="left" if observer.ordinal % 2 else "right")
    n_total = len(items)
    n_practice = sum(i.kind == "practice" for i in items)
    out = []
    for item in items:
        row = by_key[(item.kind, item.pair_index)]
        trivial_left = item.trivial_side == "left"
        impossible_side = "right" if trivial_left else "left"
        practice = item.kind == "practice"
        out.append(
            ScheduledTrial(
                trial_id=int(row.id),
                position=item.position,
                n_total=n_total,
                kind=item.kind,
                number=item.position + 1 if practice else item.position + 1 - n_practice,
                block_size=n_practice if practice else n_total - n_practice,
                left_file=row.trivial_file if trivial_left else row.impossible_file,
                right_file=row.impossible_file if trivial_left else row.trivial_file,
                trivial_side=item.trivial_side,
                correct_side=impossible_side if question == "harder" else item.trivial_side,
            )
        )
    return out
