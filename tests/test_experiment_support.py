"""human_study.experiment and audit_app._study without a browser: finding studies, link checks, the screen order,
answers from the browser, committing answers and the stimulus HTML."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from audit_app._study import session_audit_dir, study_roots
from human_study import experiment as xp
from human_study.design import CATCH_TRIAL_NOTE, QUESTIONS, DesignConfig
from human_study.errors import StudyError, UnknownObserver, UnknownStudy
from human_study.folder import (
    STUDY_DIRS_ENV,
    create_study,
    find_study_folder,
    list_study_folders,
    open_study_dir,
)
from human_study.links import link_params, server_base_url
from human_study.records import Progress
from human_study.results import observers_table, rt_sources
from tests.study_fixtures import make_study_audit


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("support") / "audit-a")
    return create_study(
        audit,
        "pilot",
        config=DesignConfig(n_trials=8, n_practice=2, n_catch=1, size=16, seed=11),
        n_observers=4,
    )


@pytest.fixture(scope="module")
def opened(made):
    store, study = open_study_dir(made.folder)
    yield store, study
    store.close()


# ---------------------------------------------------------------- finding a study
def test_study_roots_order_and_env(tmp_path):
    env = {STUDY_DIRS_ENV: os.pathsep.join([str(tmp_path / "x"), "", str(tmp_path / "y")])}
    argv = ["app.py", "--", "--audit", str(tmp_path / "cli-audit"), "--runs", str(tmp_path / "many")]
    roots = study_roots(tmp_path / "audit", argv=argv, environ=env)
    expected = ["audit", "cli-audit", "x", "y", "many"]
    assert roots == [(tmp_path / n).resolve() for n in expected]
    assert study_roots(None, argv=["app.py"], environ={}) == [(Path.cwd() / "runs").resolve()]
    same = study_roots(tmp_path / "a", argv=["app.py", "--audit", str(tmp_path / "a")], environ={})
    assert same == [(tmp_path / "a").resolve(), (Path.cwd() / "runs").resolve()]


def test_session_audit_dir():
    assert session_audit_dir({"audit_dir": "runs/a"}) == "runs/a"
    assert session_audit_dir({"audit_path": "runs/b"}) == "runs/b"  # the router's key
    assert session_audit_dir({"audit_path": None}) is None and session_audit_dir({}) is None


@pytest.mark.parametrize("root_of", ["study", "studies", "audit", "audits"])
def test_find_study_folder_from_any_root(made, root_of):
    folder = made.folder
    root = {
        "study": folder,
        "studies": folder.parent,
        "audit": folder.parent.parent,
        "audits": folder.parent.parent.parent,
    }[root_of]
    assert find_study_folder(made.study_id, [root]) == folder.resolve()
    listed = list_study_folders([root, root])  # each folder once
    assert [s.study_id for s in listed] == [made.study_id]
    assert listed[0].name == "pilot" and made.study_id in listed[0].label


def test_find_study_folder_rejects_unknown_and_malformed(made, tmp_path):
    junk = tmp_path / "junk" / "studies" / "bad"
    junk.mkdir(parents=True)
    (junk / "study.json").write_text("{not json")
    other = tmp_path / "junk" / "studies" / "other"
    other.mkdir()
    (other / "study.json").write_text(json.dumps({"format": "something-else", "study_id": made.study_id}))
    roots = [tmp_path / "junk", tmp_path / "missing", made.folder.parent]
    assert find_study_folder(made.study_id, roots) == made.folder.resolve()
    with pytest.raises(UnknownStudy, match="no study with this link"):
        find_study_folder("0123456789ab", roots)
    for bad in (None, "", "../../etc", "*", made.study_id.upper(), 12):
        with pytest.raises(UnknownStudy, match="link"):
            find_study_folder(bad, roots)


# ---------------------------------------------------------------- the link
def test_link_params_normalise():
    assert link_params({"study": [" ABCDEF012345 "], "observer": ["ab12cd"]}) == ("abcdef012345", "AB12CD")


@pytest.mark.parametrize(
    "query, error",
    [
        ({}, UnknownStudy),
        ({"observer": ["ABCD"]}, UnknownStudy),
        ({"study": ["abcdef012345", "abcdef012346"], "observer": ["ABCD"]}, UnknownStudy),
        ({"study": ["abcdef01234"], "observer": ["ABCD"]}, UnknownStudy),
        ({"study": ["x" * 5000], "observer": ["ABCD"]}, UnknownStudy),
        ({"study": ["'; DROP TABLE studies;--"], "observer": ["ABCD"]}, UnknownStudy),
        ({"study": ["abcdef012345"]}, UnknownObserver),
        ({"study": ["abcdef012345"], "observer": ["A", "B"]}, UnknownObserver),
        ({"study": ["abcdef012345"], "observer": ["<script>"]}, UnknownObserver),
        ({"study": ["abcdef012345"], "observer": ["x' OR '1'='1"]}, UnknownObserver),
    ],
)
def test_tampered_links_give_friendly_errors(query, error):
    with pytest.raises(error) as info:
        link_params(query)
    assert "link" in str(info.value) or "code" in str(info.value)


# ---------------------------------------------------------------- screens
def _progress(n_answered, n_practice=2, n_test=9):
    return Progress(
        n_answered,
        n_practice + n_test,
        n_practice,
        min(n_answered, n_practice),
        n_test,
        max(0, n_answered - n_practice),
    )


def _visit(**kw):
    return replace(xp.Visit("abcdef012345", "CODE", 1, 1, 0), **kw)


def test_screen_order_of_a_first_visit():
    v = _visit()
    assert xp.next_screen(_progress(0), v, every=4) == "consent"
    v.consented = True
    assert xp.next_screen(_progress(0), v, every=4) == "instructions"
    v.instructed = True
    assert xp.next_screen(_progress(0), v, every=4) == "trial"
    v.feedback = {"correct": True}
    assert xp.next_screen(_progress(1), v, every=4) == "feedback"
    v.feedback = None
    assert xp.next_screen(_progress(1), v, every=4) == "trial"
    assert xp.next_screen(_progress(2), v, every=4) == "practice_done"
    v.test_started = True
    assert [xp.next_screen(_progress(n), v, every=4) for n in (2, 3, 5)] == ["trial"] * 3
    assert xp.next_screen(_progress(6), v, every=4) == "break"  # 4 test trials done
    v.break_done_at = 4
    assert xp.next_screen(_progress(6), v, every=4) == "trial"
    assert xp.next_screen(_progress(10), v, every=4) == "break"  # 8 done
    assert xp.next_screen(_progress(10), v, every=0) == "trial"  # no breaks
    assert xp.next_screen(_progress(11), v, every=4) == "debrief"


def test_screen_order_after_a_reload():
    assert xp.next_screen(_progress(1), _visit(n_answered_at_start=1), every=4) == "welcome_back"
    assert xp.next_screen(_progress(1), _visit(n_answered_at_start=1, resumed=True), every=4) == "trial"
    assert xp.next_screen(_progress(2), _visit(n_answered_at_start=2), every=4) == "practice_done"
    assert xp.next_screen(_progress(6), _visit(n_answered_at_start=6), every=4) == "break"
    assert xp.next_screen(_progress(11), _visit(n_answered_at_start=11), every=4) == "debrief"
    # no practice at all: straight from the instructions to the trials
    assert xp.next_screen(_progress(0, 0), _visit(consented=True, instructed=True), every=4) == "trial"


def test_break_every(opened):
    _, study = opened
    assert xp.break_every(study) == 0  # 9 test trials: one block
    big = replace(study, config={**study.config, "n_trials": 149, "n_catch": 0})
    assert xp.break_every(big) == 50  # meding2022: 50, 50, 49
    assert xp.break_every(replace(big, config={**big.config, "n_trials": 120})) == 40
    assert xp.break_every(replace(study, config={**study.config, "break_every": 3})) == 3
    assert xp.break_every(replace(big, config={**big.config, "break_every": "x"})) == 50


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"trial_id": 7, "choice": "left", "rt_ms": 512.5}, ("left", 512.5)),
        ({"trial_id": 7, "choice": "right", "rt_ms": 3}, ("right", 3.0)),
        ({"trial_id": 7, "choice": "right", "rt_ms": -1}, ("right", None)),
        ({"trial_id": 7, "choice": "right", "rt_ms": math.inf}, ("right", None)),
        ({"trial_id": 7, "choice": "right", "rt_ms": "fast"}, ("right", None)),
        ({"trial_id": 7, "choice": "right", "rt_ms": True}, ("right", None)),
        ({"trial_id": 7, "choice": "right"}, ("right", None)),
        ({"trial_id": 8, "choice": "left", "rt_ms": 500}, None),
        ({"trial_id": "7", "choice": "left", "rt_ms": 500}, None),
        ({"trial_id": True, "choice": "left", "rt_ms": 500}, None),
        ({"trial_id": 7, "choice": "up", "rt_ms": 500}, None),
        (None, None),
        ("left", None),
    ],
)
def test_client_response_is_validated(payload, expected):
    assert xp.client_response(payload, 7) == expected


def test_submit_answer_feedback_idempotence_and_rt_sources(opened, made):
    store, study = opened
    visit = xp.start_visit(store, study, made.observer_codes[0], user_agent="pytest")
    assert visit.n_answered_at_start == 0
    first = store.next_trial(visit.observer_id)
    assert first.kind == "practice"
    xp.mark_shown(visit, first, now=datetime.now(timezone.utc) - timedelta(seconds=2))
    earlier = visit.shown_at[first.trial_id]
    xp.mark_shown(visit, first)  # a rerun of the same trial keeps the first display time
    assert visit.shown_at[first.trial_id] == earlier

    rec = xp.submit_answer(store, visit, first.trial_id, first.correct_side, rt_ms=640.0)
    assert rec.created and rec.correct and visit.notice is None
    assert visit.feedback["correct"] and visit.feedback["correct_side"] == first.correct_side
    assert visit.feedback["left_file"] == first.left_file and not visit.feedback["last_practice"]
    visit.feedback = None
    again = xp.submit_answer(store, visit, first.trial_id, "left", rt_ms=5.0)  # a double click
    assert not again.created and visit.feedback is None  # no second feedback

    second = store.next_trial(visit.observer_id)
    xp.mark_shown(visit, second, now=datetime.now(timezone.utc) - timedelta(milliseconds=1500))
    rec = xp.submit_answer(store, visit, second.trial_id, "left")  # a plain button: server RT
    assert rec.created and visit.feedback["last_practice"]

    # an answer to a trial that is not on screen is not stored
    later = store.schedule(visit.observer_id)[5]
    assert xp.submit_answer(store, visit, later.trial_id, "left") is None
    assert visit.notice == xp.NOT_ON_SCREEN

    frame = store.admin(study.id, made.admin_token).responses_frame()
    mine = frame[frame["observer_id"] == visit.observer_id].set_index("position")
    assert len(mine) == 2
    assert mine.loc[0, "rt_source"] == "client" and mine.loc[0, "rt_ms"] == 640.0
    assert mine.loc[1, "rt_source"] == "server" and 1500 <= mine.loc[1, "rt_ms"] < 60_000


def test_submit_answer_survives_a_database_error(opened, made, monkeypatch):
    import sqlalchemy as sa

    store, study = opened
    visit = xp.start_visit(store, study, made.observer_codes[1])
    trial = store.next_trial(visit.observer_id)

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "record_response", broken)
    assert xp.submit_answer(store, visit, trial.trial_id, "left") is None
    assert visit.notice == xp.SAVE_FAILED and visit.attempt == 1
    monkeypatch.undo()
    assert store.next_trial(visit.observer_id) == trial  # the same trial again
    assert xp.submit_answer(store, visit, trial.trial_id, "left").created


# ---------------------------------------------------------------- texts and stimuli
def test_texts(opened):
    store, study = opened
    text = xp.instructions_text(study, every=4)
    assert QUESTIONS["harder"] in text and CATCH_TRIAL_NOTE in text
    assert "2 practice trials" in text and "9 trials" in text and "break every 4 trials" in text
    no_catch = replace(study, config={**study.config, "n_catch": 0, "question": "easier"})
    text = xp.instructions_text(no_catch, every=0)
    assert CATCH_TRIAL_NOTE not in text and QUESTIONS["easier"] in text and "break" not in text
    assert "about 1 minute: 11 pairs." in xp.consent_text(study)
    assert "11 pairs, with short breaks." in xp.consent_text(study, every=4)
    long = replace(study, config={**study.config, "n_trials": 149})
    assert "about 15 minutes: 152 pairs, with short breaks." in xp.consent_text(long, every=50)
    assert "Thank you" in xp.debrief_text(study) and "that **all** neural networks" in xp.debrief_text(study)
    loose = replace(study, config={**study.config, "tolerance": 1})
    assert "that **all but at most 1** neural networks" in xp.debrief_text(loose)
    assert "finds harder to classify" in xp.consent_text(study)
    assert "finds easier to classify" in xp.consent_text(no_catch)
    assert xp.progress_label(store.schedule(1)[0]) == (0.0, "Practice trial 1 of 2")
    assert xp.progress_label(store.schedule(1)[4]) == (2 / 9, "Trial 3 of 9")
    assert xp.feedback_text({"correct": False, "correct_side": "left"}, study) == (
        False,
        "Not quite: the left image is the harder one for the networks.",
    )


def test_custom_consent_and_debrief(opened, tmp_path):
    _, study = opened
    moved = replace(study, folder=tmp_path)
    (tmp_path / "consent.md").write_text("Our own consent form.")
    (tmp_path / "debrief.md").write_text("Our own debrief.")
    assert xp.consent_text(moved) == "Our own consent form."
    assert xp.debrief_text(moved) == "Our own debrief."


def test_stimulus_html_serves_only_the_studys_images(opened):
    store, study = opened
    trial = store.schedule(1)[0]
    html = xp.stimulus_html(store, study, trial.left_file, side="left", trial_id=trial.trial_id)
    assert html.count("<img ") == 1 and 'data-xp-side="left"' in html
    assert f'data-xp-trial="{trial.trial_id}"' in html and 'width="16"' in html
    assert "data:image/png;base64,iVBORw0KGgo" in html  # a PNG, inlined
    assert "outline" not in xp.stimulus_html(store, study, trial.left_file, side="left", trial_id=1)
    assert "#2e7d32" in xp.stimulus_html(
        store, study, trial.left_file, side="left", trial_id=1, highlight=True
    )
    for bad in ("../study.json", "study.db", "image_999999.png", "/etc/passwd"):
        with pytest.raises(StudyError):
            xp.stimulus_html(store, study, bad, side="left", trial_id=1)
    with pytest.raises(ValueError, match="side"):
        xp.stimulus_html(store, study, trial.left_file, side="middle", trial_id=1)


def test_results_helpers(opened, made):
    store, study = opened
    admin = store.admin(study.id, made.admin_token)
    frame = admin.responses_frame()
    rows = observers_table(admin, frame, base_url="http://10.0.0.5:8501")
    assert [r["subj"] for r in rows][:4] == ["subject-01", "subject-02", "subject-03", "subject-04"]
    assert rows[0]["link"] == f"http://10.0.0.5:8501/experiment?study={study.id}&observer={rows[0]['code']}"
    assert "link" not in observers_table(admin, frame)[0]
    assert server_base_url("http://10.0.0.5:8501/study_results?x=1") == "http://10.0.0.5:8501"
    assert server_base_url("javascript:alert(1)") is None and server_base_url(None) is None
    assert rt_sources(frame.iloc[:0]) == "none yet"


def test_a_study_in_degrees_calibrates_after_the_consent_and_before_any_trial():
    from human_study.records import Calibration

    visit = _visit(needs_calibration=True)
    assert xp.next_screen(_progress(0), visit, every=0) == "consent"
    visit.consented = True
    assert xp.next_screen(_progress(0), visit, every=0) == "calibration"
    visit.calibration = Calibration(3.78, 570.0)
    assert xp.next_screen(_progress(0), visit, every=0) == "instructions"
    # a new session without a calibration (none stored before) asks before the next trial
    assert xp.next_screen(_progress(5), _visit(consented=True, needs_calibration=True), every=0) == "calibration"


def test_client_phases_keep_only_known_finite_durations():
    payload = {"phases": {"iti": 500.04, "fixation": "300", "stimulus": float("nan"), "mask": -1, "evil": 5}}
    assert xp.client_phases(payload) == {"iti": 500.0}
    assert xp.client_phases({"phases": [1, 2]}) is None and xp.client_phases(None) is None


def test_the_page_css_hides_streamlit_chrome_and_sets_the_background(opened):
    store, study = opened
    css = xp.page_css(study)
    for selector in ('[data-testid="stToolbar"]', '[data-testid="stMainMenu"]', 'header[data-testid="stHeader"]'):
        assert selector in css.split("{")[0]
    assert "background: #808080" in css  # mid-grey, the default
