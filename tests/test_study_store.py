"""Study store: lookups from link parameters, idempotent responses, resume, tokens, SQLite setup."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from human_study.design import DesignConfig
from human_study.errors import AccessDenied, StudyError, UnknownObserver, UnknownStudy
from human_study.folder import create_study, open_study_dir
from human_study.links import observer_link
from human_study.schedule import build_schedule
from human_study.schema import SCHEMA_VERSION, sqlite_url
from human_study.visit import Store
from tests.study_fixtures import make_study_audit


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = make_study_audit(tmp_path_factory.mktemp("audit") / "run")
    return create_study(
        path,
        "store-test",
        config=DesignConfig(n_trials=30, n_practice=3, n_catch=2, size=16, seed=4),
        n_observers=3,
    )


@pytest.fixture()
def store(study):
    store, _ = open_study_dir(study.folder)
    yield store
    store.close()


def _fresh_observer(store, study, code=None):
    admin = store.admin(study.study_id, study.admin_token)
    return admin.add_observers(0 if code else 1, codes=[code] if code else [])[0]


def _answer_all(store, observer, session, choose=lambda t: t.correct_side):
    n = 0
    while (trial := store.next_trial(observer.id)) is not None:
        store.record_response(session.id, trial.trial_id, choose(trial), rt_ms=500.0)
        n += 1
    return n


# ---------------------------------------------------------------- links and lookups
def test_lookup_from_link_parameters(store, study):
    code = study.observer_codes[0]
    s, o = store.observer_from_link(study.study_id, code.lower())
    assert s.id == study.study_id and o.code == code and o.ordinal == 1
    link = observer_link("http://10.0.0.5:8501/", s.id, code)
    assert link == f"http://10.0.0.5:8501/experiment?study={s.id}&observer={code}"


@pytest.mark.parametrize(
    "study_id", [None, "", "nope", "0" * 12, "'; DROP TABLE studies; --", ["x"], 12, "a" * 5000]
)
def test_unknown_or_tampered_study_ids_give_friendly_errors(store, study_id):
    with pytest.raises(UnknownStudy, match="link"):
        store.get_study(study_id)


@pytest.mark.parametrize("code", [None, "", "ZZZZZZZZ", "x' OR '1'='1", "a" * 100, 5, "<script>"])
def test_unknown_or_tampered_codes_give_friendly_errors(store, study, code):
    with pytest.raises(UnknownObserver):
        store.get_observer(study.study_id, code)


def test_bad_base_url():
    with pytest.raises(StudyError, match="http"):
        observer_link("localhost:8501", "abc", "CODE")


# ---------------------------------------------------------------- one observer
def test_practice_first_double_submit_refresh_and_finish(store, study):
    obs = _fresh_observer(store, study)
    first = store.start_session(obs.id, user_agent="pytest")
    assert first.index == 1
    schedule = store.schedule(obs.id)
    assert len(schedule) == 35 and [t.kind for t in schedule[:3]] == ["practice"] * 3
    assert all(t.feedback for t in schedule[:3]) and not any(t.feedback for t in schedule[3:])

    trial = store.next_trial(obs.id)
    assert trial == schedule[0]
    rec = store.record_response(first.id, trial.trial_id, "left", rt_ms=812.5)
    assert rec.created and rec.correct == (trial.correct_side == "left")
    again = store.record_response(first.id, trial.trial_id, "right", rt_ms=10.0)  # a double click
    assert not again.created and again.response_id == rec.response_id and again.choice == "left"

    with pytest.raises(StudyError, match="not the next trial"):
        store.record_response(first.id, schedule[5].trial_id, "left")

    for _ in range(9):
        t = store.next_trial(obs.id)
        store.record_response(first.id, t.trial_id, t.correct_side)
    assert store.progress(obs.id).n_answered == 10

    second = store.start_session(obs.id)  # the browser reloads
    assert second.index == 2
    assert store.next_trial(obs.id) == schedule[10]
    # a submit from the old page that lands after the reload changes nothing
    late = store.record_response(first.id, schedule[9].trial_id, "left")
    assert not late.created
    # the same trial from the new session is the same answer too (unique per observer)
    assert not store.record_response(second.id, schedule[9].trial_id, "right").created

    n = _answer_all(store, obs, second)
    assert n == 25
    progress = store.progress(obs.id)
    assert progress.finished and progress.n_answered == progress.n_total == 35
    assert store.next_trial(obs.id) is None and store.is_finished(obs.id)
    assert not store.record_response(second.id, schedule[-1].trial_id, "left").created
    assert store.get_observer(study.study_id, obs.code).finished_at is not None

    frame = store.admin(study.study_id, study.admin_token).responses_frame()
    mine = frame[frame["observer_id"] == obs.id]
    assert len(mine) == 35 and mine["trial_id"].is_unique
    assert mine["position"].tolist() == list(range(35))
    assert Counter(mine["session_index"]) == {1: 10, 2: 25}


def test_bad_response_input_is_rejected(store, study):
    obs = _fresh_observer(store, study)
    session = store.start_session(obs.id)
    trial = store.next_trial(obs.id)
    for bad in (
        dict(choice="up"),
        dict(choice=None),
        dict(rt_ms=-1),
        dict(rt_ms=float("nan")),
        dict(rt_ms="fast"),
        dict(rt_ms=100, rt_source="psychic"),
        dict(shown_at=datetime(2024, 1, 1)),
    ):
        kwargs = {"choice": "left", **bad}
        choice = kwargs.pop("choice")
        with pytest.raises(StudyError):
            store.record_response(session.id, trial.trial_id, choice, **kwargs)
    with pytest.raises(StudyError, match="no session"):
        store.record_response(10**9, trial.trial_id, "left")
    with pytest.raises(StudyError, match="not part of"):
        store.record_response(session.id, 10**9, "left")
    with pytest.raises(StudyError, match="integer"):
        store.record_response(session.id, "1; DROP TABLE responses", "left")
    assert store.progress(obs.id).n_answered == 0


def test_server_and_client_response_times(store, study):
    obs = _fresh_observer(store, study)
    session = store.start_session(obs.id)
    t1 = store.next_trial(obs.id)
    store.record_response(session.id, t1.trial_id, "left", rt_ms=640)
    t2 = store.next_trial(obs.id)
    shown = datetime.now(timezone.utc) - timedelta(seconds=2)
    store.record_response(session.id, t2.trial_id, "left", shown_at=shown)
    frame = store.admin(study.study_id, study.admin_token).responses_frame()
    rows = frame[frame["observer_id"] == obs.id].set_index("position")
    assert rows.loc[0, "rt_source"] == "client" and rows.loc[0, "rt_ms"] == 640
    assert rows.loc[1, "rt_source"] == "server" and 2000 <= rows.loc[1, "rt_ms"] < 60000
    for column in ("answered_at", "shown_at"):
        value = rows.loc[1, column]
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


def test_orders_differ_between_observers_and_follow_their_seeds(store, study):
    admin = store.admin(study.study_id, study.admin_token)
    people = admin.observers()[:3]
    orders = [[t.trial_id for t in store.schedule(o.id)] for o in people]
    assert len({tuple(o) for o in orders}) == 3
    rows = store._study_trials(study.study_id)
    for o in people:
        assert build_schedule(rows, o, question="harder") == store.schedule(o.id)
    # 3 practice trials: consecutive observers put the odd one on opposite sides
    lefts = [
        sum(t.trivial_side == "left" for t in store.schedule(o.id) if t.kind == "practice")
        for o in people[:2]
    ]
    assert sorted(lefts) == [1, 2]


# ---------------------------------------------------------------- admin and tokens
def test_admin_token_required_and_only_its_hash_stored(store, study):
    for token in (None, "", "wrong", study.admin_token + "x", study.admin_token.upper()):
        with pytest.raises(AccessDenied):
            store.admin(study.study_id, token)
        assert not store.check_token(study.study_id, token)
    assert store.check_token(study.study_id, study.admin_token)
    raw = (study.folder / "study.db").read_bytes() + (study.folder / "study.json").read_bytes()
    wal = study.folder / "study.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert study.admin_token.encode() not in raw


def test_observer_codes(store, study):
    admin = store.admin(study.study_id, study.admin_token)
    made = admin.add_observers(2, codes=["lab-p01"])
    assert made[0].code == "LAB-P01" and len(made) == 3
    ordinals = [o.ordinal for o in admin.observers()]
    assert ordinals == sorted(ordinals) and len(set(ordinals)) == len(ordinals)
    with pytest.raises(StudyError, match="already exist"):
        admin.add_observers(0, codes=["LAB-P01"])
    with pytest.raises(StudyError):
        admin.add_observers(0, codes=["a b"])
    with pytest.raises(StudyError):
        admin.add_observers(-1)


def test_image_path_serves_only_the_study_images(store, study):
    s = store.get_study(study.study_id)
    name = store.schedule(_fresh_observer(store, study).id)[0].left_file
    path = store.image_path(s, name)
    assert path.is_file() and path.parent == (study.folder / "images").resolve()
    for bad in ("../study.db", "study.json", "image_999999.png", "/etc/passwd", "image_1.png/../../x", None):
        with pytest.raises(StudyError):
            store.image_path(s, bad)


# ---------------------------------------------------------------- the database itself
def test_sqlite_runs_in_wal_mode_with_busy_timeout(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION


def test_unique_keys_hold_even_against_raw_sql(store, study):
    obs = _fresh_observer(store, study)
    trial = store.next_trial(obs.id)
    store.record_response(store.start_session(obs.id).id, trial.trial_id, "left")
    with sqlite3.connect(study.folder / "study.db") as conn:
        observer_id, trial_id, position = obs.id, trial.trial_id, trial.position
        other_session = conn.execute(
            "INSERT INTO sessions (observer_id, started_at) VALUES (?, '2024-01-01 00:00:00')", (observer_id,)
        ).lastrowid
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO responses (observer_id, session_id, trial_id, position, trivial_side, choice, correct, "
                "answered_at) VALUES (?, ?, ?, ?, 'left', 'left', 1, '2024-01-01 00:00:00')",
                (observer_id, other_session, trial_id, position + 1000),
            )
        conn.rollback()


def test_schema_version_mismatch_is_refused(tmp_path):
    url = sqlite_url(tmp_path / "s.db")
    Store(url).close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StudyError, match="schema version 99"):
        Store(url)


def test_open_study_dir_errors(tmp_path):
    with pytest.raises(StudyError, match="not a study folder"):
        open_study_dir(tmp_path)
    (tmp_path / "study.json").write_text('{"format": "ddd-audit-study/1", "study_id": "abcdefabcdef"}')
    with pytest.raises(StudyError, match="missing"):
        open_study_dir(tmp_path)
    Store(sqlite_url(tmp_path / "study.db")).close()
    with pytest.raises(StudyError, match="holds no study"):
        open_study_dir(tmp_path)
    (tmp_path / "study.json").write_text(
        '{"format": "ddd-audit-study/1", "study_id": "abcdefabcdef", "database": "postgresql://u:***@h/db"}'
    )
    with pytest.raises(StudyError, match="--db"):
        open_study_dir(tmp_path)


def test_the_database_and_its_wal_files_are_private(tmp_path):
    """study.db, study.db-wal and study.db-shm hold codes and responses: 0600 under any umask."""
    import os
    import stat

    old = os.umask(0o022)  # the usual umask, under which files are made 0644
    try:
        path = make_study_audit(tmp_path / "audit", n_trivial=40, n_impossible=40)
        made = create_study(
            path, "private", config=DesignConfig(n_trials=4, n_practice=0, size=16, seed=2), n_observers=1
        )
        store, study = open_study_dir(made.folder)
        try:
            observer = store.get_observer(study.id, made.observer_codes[0])
            session = store.start_session(observer.id)
            trial = store.next_trial(observer.id)
            store.record_response(session.id, trial.trial_id, "left")
            files = [made.folder / f"study.db{suffix}" for suffix in ("", "-wal", "-shm")]
            assert all(f.is_file() for f in files)  # WAL mode, a connection open
            modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
            assert modes == {f.name: "0o600" for f in files}
            other = Store(sqlite_url(tmp_path / "other.db"))  # any new SQLite store
            other.close()
            assert stat.S_IMODE((tmp_path / "other.db").stat().st_mode) == 0o600
        finally:
            store.close()
    finally:
        os.umask(old)
