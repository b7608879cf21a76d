"""Many observers at once against one SQLite study: nothing lost, nothing doubled, orders reproducible."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from human_study.design import DesignConfig
from human_study.folder import create_study, open_study_dir
from human_study.schedule import derive_seed, observer_schedule
from tests.conftest import STUDY_DB_ENV, STUDY_DB_SKIP
from tests.study_fixtures import make_study_audit

# Set to a SQLAlchemy URL (e.g. a scratch PostgreSQL database) to run the tests there as well.
EXTRA_DB_ENV = STUDY_DB_ENV
N_OBSERVERS = 24
N_TRIALS = 149
N_PRACTICE = 5


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", EXTRA_DB_ENV])
def test_many_observers_at_once_lose_and_double_nothing(tmp_path, backend):
    db_url = None if backend == "sqlite" else os.environ.get(EXTRA_DB_ENV)
    if backend != "sqlite" and not db_url:
        pytest.skip(STUDY_DB_SKIP)
    path = make_study_audit(tmp_path / "run")
    made = create_study(
        path,
        "crowd",
        config=DesignConfig(n_trials=N_TRIALS, n_practice=N_PRACTICE, size=16, seed=2022),
        db_url=db_url,
        n_observers=N_OBSERVERS,
    )
    # two Store objects on one file, like two app processes; threads share each one, like Streamlit
    stores = [open_study_dir(made.folder)[0] for _ in range(2)]
    admin = stores[0].admin(made.study_id, made.admin_token)
    people = admin.observers()
    assert len(people) == N_OBSERVERS
    n_total = N_TRIALS + N_PRACTICE
    barrier = threading.Barrier(N_OBSERVERS)
    errors: list[BaseException] = []
    logs: dict[int, list[tuple[int, str, int]]] = {}
    session_counts: dict[int, int] = {}

    def observer_run(k: int) -> None:
        store = stores[k % 2]
        obs = people[k]
        rng = random.Random(1000 + k)
        refresh_at = rng.randrange(20, 130)
        log: list[tuple[int, str, int]] = []
        try:
            barrier.wait(timeout=60)
            session = store.start_session(obs.id)
            sessions = 1
            while (trial := store.next_trial(obs.id)) is not None:
                right = rng.random() < 0.75
                choice = (
                    trial.correct_side if right else ("left" if trial.correct_side == "right" else "right")
                )
                rec = store.record_response(session.id, trial.trial_id, choice, rt_ms=rng.uniform(300, 3000))
                if not rec.created or rec.position != trial.position or rec.correct != right:
                    raise AssertionError(f"observer {k}: first submit of {trial.position} not stored as sent")
                log.append((trial.trial_id, choice, rec.response_id))
                if rng.random() < 0.15:  # double click / repeated submit, possibly with the other button
                    dup = store.record_response(session.id, trial.trial_id, rng.choice(["left", "right"]))
                    if dup.created or dup.response_id != rec.response_id or dup.choice != choice:
                        raise AssertionError(
                            f"observer {k}: double submit of {trial.position} changed something"
                        )
                if trial.position == refresh_at:  # the browser reloads: a new session resumes
                    old = session
                    session = store.start_session(obs.id)
                    sessions += 1
                    late = store.record_response(old.id, trial.trial_id, choice)
                    if late.created:
                        raise AssertionError(f"observer {k}: a late submit after reload added a row")
            session_counts[obs.id] = sessions
            logs[obs.id] = log
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=observer_run, args=(k,)) for k in range(N_OBSERVERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "an observer thread hung"
    assert not errors, errors[:3]

    frame = admin.responses_frame()
    assert len(frame) == N_OBSERVERS * n_total
    with stores[0].engine.connect() as conn:
        distinct = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT DISTINCT r.observer_id, r.trial_id FROM responses r "
                "JOIN observers o ON o.id = r.observer_id WHERE o.study_id = :study) AS pairs"
            ),
            {"study": made.study_id},
        ).scalar()
    assert distinct == len(frame), "a trial was stored twice for one observer"

    design_pairs = [(p.kind, p.pair_index) for p in made.design.pairs]
    for obs in people:
        mine = frame[frame["observer_id"] == obs.id].sort_values("response_id")
        # nothing lost: every answer the observer got a receipt for is stored, as sent, in order
        stored = list(zip(mine["trial_id"], mine["choice"], mine["response_id"], strict=True))
        assert stored == logs[obs.id]
        assert mine["position"].tolist() == list(range(n_total))
        assert Counter(mine["session_index"]).keys() == {1, 2} and session_counts[obs.id] == 2
        assert obs.seed == derive_seed(2022, "observer", obs.ordinal)
        # the order and the sides follow from the stored seed alone
        again = observer_schedule(
            [_Key(k, i) for k, i in design_pairs], obs.seed, odd_side="left" if obs.ordinal % 2 else "right"
        )
        assert list(zip(mine["kind"], mine["pair_index"], strict=True)) == [
            (s.kind, s.pair_index) for s in again
        ]
        assert mine["trivial_side"].tolist() == [s.trivial_side for s in again]
        main_sides = Counter(mine.loc[mine["kind"] == "main", "trivial_side"])
        assert abs(main_sides["left"] - main_sides["right"]) == 1
        assert obs.ordinal and admin.store.is_finished(obs.id)
    # across an even number of observers the odd main trial is balanced exactly
    total = Counter(frame.loc[frame["kind"] == "main", "trivial_side"])
    assert total["left"] == total["right"] == N_OBSERVERS * N_TRIALS // 2
    for store in stores:
        store.close()


class _Key:
    def __init__(self, kind: str, pair_index: int):
        self.kind, self.pair_index = kind, pair_index


@pytest.mark.parametrize("backend", ["sqlite", EXTRA_DB_ENV])
def test_simultaneous_submits_store_one_row(tmp_path, backend):
    db_url = None if backend == "sqlite" else os.environ.get(EXTRA_DB_ENV)
    if backend != "sqlite" and not db_url:
        pytest.skip(STUDY_DB_SKIP)
    path = make_study_audit(tmp_path / "run", n_trivial=12, n_impossible=12)
    made = create_study(
        path,
        "race",
        config=DesignConfig(n_trials=8, n_practice=0, size=16, seed=3),
        db_url=db_url,
        n_observers=1,
    )
    store, study = open_study_dir(made.folder)
    obs = store.admin(study.id, made.admin_token).observers()[0]
    for _ in range(8):  # every trial is submitted by 12 threads from 3 sessions at the same moment
        sessions = [store.start_session(obs.id) for _ in range(3)]
        trial = store.next_trial(obs.id)
        barrier = threading.Barrier(12)
        results, errors = [], []

        def submit(k, trial=trial, sessions=sessions, barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait(timeout=60)
                results.append(
                    store.record_response(sessions[k % 3].id, trial.trial_id, ("left", "right")[k % 2])
                )
            except Exception as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors[:3]
        assert sum(r.created for r in results) == 1
        assert len({r.response_id for r in results}) == 1 and len({r.choice for r in results}) == 1
    assert store.is_finished(obs.id)
    assert len(store.admin(study.id, made.admin_token).responses_frame()) == 8
    store.close()
