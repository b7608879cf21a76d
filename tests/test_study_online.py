"""Display calibration, online recruitment and the study database's migration: stimulus sizes
in degrees of visual angle, a recruiting service's ids kept in the database and out of every
export, open enrolment, the completion code and redirect, the attention-check policy, and a
version-1 study database that still opens."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from human_study import experiment as xp
from human_study.design import DesignConfig
from human_study.errors import StudyError
from human_study.export import full_frame, model_vs_human_frame
from human_study.folder import STUDY_DIRS_ENV, create_study, open_study_dir
from human_study.links import recruitment_link, recruitment_params
from human_study.records import Calibration
from human_study.results import csv_bytes
from human_study.schema import SCHEMA_VERSION
from tests.study_fixtures import make_study_audit

PAGE = str(Path(__file__).resolve().parents[1] / "audit_app" / "experiment.py")
PID = "5f1e2d3c4b5a69788796a5b4"  # a Prolific-style participant id


# --------------------------------------------------------------------------- calibration
def test_the_stimulus_size_in_css_pixels_follows_the_visual_angle_and_distance():
    # a 96-dpi screen: a credit card (85.60 mm) is 85.60 / 25.4 * 96 = 323.5 CSS px wide
    calibration = xp.calibration_from_card(85.60 / 25.4 * 96, 57.0)
    assert calibration.px_per_mm == pytest.approx(96 / 25.4)
    assert calibration.viewing_distance_mm == 570.0
    # 4 degrees at 57 cm: 2 * 570 mm * tan(2 deg) = 39.81 mm = 150.5 px
    assert 2 * 570 * math.tan(math.radians(2)) == pytest.approx(39.81, abs=0.01)
    assert xp.stimulus_px(4.0, calibration) == 150
    # twice as far, the same angle needs twice the pixels; a screen of twice the density too
    assert xp.stimulus_px(4.0, Calibration(96 / 25.4, 1140.0)) == 301
    assert xp.stimulus_px(4.0, Calibration(2 * 96 / 25.4, 570.0)) == 301
    with pytest.raises(StudyError, match="between 100 and 4000|100 to 4000"):
        xp.calibration_from_card(20, 57)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    return make_study_audit(tmp_path_factory.mktemp("online") / "audit")


def open_page(query: dict) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def player_size(at: AppTest) -> int:
    (player,) = at.get("bidi_component")
    return json.loads(player.proto.json)["size"]


def test_a_study_in_degrees_calibrates_once_per_session_and_sizes_the_pair(audit, monkeypatch):
    made = create_study(
        audit, "degrees", config=DesignConfig(n_trials=3, n_practice=0, size=16, seed=4, size_deg=4.0),
        n_observers=1,
    )
    monkeypatch.setenv(STUDY_DIRS_ENV, str(audit))
    query = {"study": made.study_id, "observer": made.observer_codes[0]}
    at = open_page(query)
    at.button(key="xp_consent").click().run()
    assert at.button[0].key == "xp_calibrated" and at.slider(key="xp_card_width")
    at.slider(key="xp_card_width").set_value(323).run()
    at.number_input(key="xp_distance_cm").set_value(57.0).run()
    card = [h.proto.body for h in at.get("html") if "data-xp-card" in h.proto.body]
    assert card and 'width:323px' in card[0] and "height:204px" in card[0]  # 323 * 53.98 / 85.60
    at.button(key="xp_calibrated").click().run()
    at.button(key="xp_start").click().run()
    expected = xp.stimulus_px(4.0, Calibration(323 / 85.60, 570.0))
    assert player_size(at) == expected == 150
    store, study = open_study_dir(made.folder)
    with store:
        sessions = store.admin(study.id, made.admin_token).sessions_frame()
        calibration = store.calibration(int(sessions["session_id"].iloc[-1]))
    assert calibration == Calibration(323 / 85.60, 570.0)
    at = open_page(query)  # a reload keeps the calibration (copied into the new session)
    assert [b.key for b in at.button] == ["xp_start"]


# --------------------------------------------------------------------------- recruitment
def test_recruitment_params_are_read_strictly():
    query = {"PROLIFIC_PID": [PID], "STUDY_ID": ["s-1"], "SESSION_ID": ["a b"], "observer": ["X"]}
    assert recruitment_params(query) == {"participant_id": PID, "study_id": "s-1"}  # "a b" is no id
    assert recruitment_params({"PROLIFIC_PID": [PID, PID]}) == {}
    link = recruitment_link("http://10.0.0.5:8501", "0123456789ab")
    assert link == (
        "http://10.0.0.5:8501/experiment?study=0123456789ab&PROLIFIC_PID={{%PROLIFIC_PID%}}"
        "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )


@pytest.fixture(scope="module")
def online(audit):
    config = DesignConfig(
        n_trials=6, n_practice=0, n_catch=2, size=16, seed=6, open_enrolment=True, completion_code="C0DE42",
        redirect_url="https://app.prolific.com/submissions/complete?cc=C0DE42", attention_policy="end",
        attention_max_failures=2,
    )
    return create_study(audit, "online", config=config, n_observers=0)


def test_participant_ids_go_to_the_database_and_never_into_an_export(online, audit, monkeypatch):
    monkeypatch.setenv(STUDY_DIRS_ENV, str(audit))
    query = {"study": online.study_id, "PROLIFIC_PID": PID, "STUDY_ID": "study-77", "SESSION_ID": "sess-9"}
    at = open_page(query)
    assert not at.exception and [b.key for b in at.button] == ["xp_consent"]
    at = open_page(query)  # the same participant again: the same observer
    store, study = open_study_dir(online.folder)
    with store:
        admin = store.admin(study.id, online.admin_token)
        (observer,) = admin.observers()
        session = store.start_session(observer.id)
        while (trial := store.next_trial(observer.id)) is not None:
            store.record_response(session.id, trial.trial_id, trial.correct_side, rt_ms=800.0)
        frame = admin.responses_frame()
    with sqlite3.connect(online.folder / "study.db") as db:
        rows = db.execute(
            "SELECT participant_id, recruitment_study_id, recruitment_session_id FROM sessions "
            "WHERE participant_id IS NOT NULL"
        ).fetchall()
        (enrolled,) = db.execute("SELECT participant_id FROM observers").fetchall()
    assert rows == [(PID, "study-77", "sess-9")] * 2 and enrolled == (PID,)
    exported = csv_bytes(model_vs_human_frame(frame)) + csv_bytes(full_frame(frame))
    assert len(frame) == 8
    for secret in (PID, "study-77", "sess-9"):
        assert secret.encode() not in exported
        assert not frame.astype(str).isin([secret]).any().any()


def test_without_open_enrolment_a_participant_id_is_no_observer_code(audit, monkeypatch):
    made = create_study(audit, "closed", config=DesignConfig(n_trials=3, n_practice=0, size=16, seed=8))
    monkeypatch.setenv(STUDY_DIRS_ENV, str(audit))
    at = open_page({"study": made.study_id, "PROLIFIC_PID": PID})
    assert not at.exception and "no observer code" in at.error[0].value


def test_the_debrief_gives_the_completion_code_and_the_way_back(online, audit, monkeypatch):
    monkeypatch.setenv(STUDY_DIRS_ENV, str(audit))
    at = open_page({"study": online.study_id, "PROLIFIC_PID": PID})  # finished in the test above
    text = "\n".join(m.value for m in at.markdown)
    assert "Thank you, you are done" in text and "**C0DE42**" in text
    (button,) = at.get("link_button")
    assert button.proto.url == "https://app.prolific.com/submissions/complete?cc=C0DE42"


def test_the_attention_policy_ends_the_experiment_after_the_set_failures(online):
    store, study = open_study_dir(online.folder)
    with store:
        candidates = store.admin(study.id, online.admin_token).add_observers(4)
        # an observer whose second catch trial is not the last trial (orders differ per observer)
        observer = next(
            o for o in candidates
            if max(t.position for t in store.schedule(o.id) if t.kind == "catch") < len(store.schedule(o.id)) - 1
        )
        session = store.start_session(observer.id)
        failures = 0
        while (trial := store.next_trial(observer.id)) is not None:
            wrong = "left" if trial.correct_side == "right" else "right"
            recorded = store.record_response(session.id, trial.trial_id, wrong if trial.kind == "catch" else trial.correct_side)
            failures += trial.kind == "catch"
        progress = store.progress(observer.id)
        ended = store.get_observer(study.id, observer.code)
    assert failures == 2 and recorded.finished and progress.ended and progress.finished
    assert progress.n_answered < progress.n_total  # ended before the last trial
    assert ended.ended_reason == "attention" and ended.finished_at is not None
    assert "ended early" in xp.debrief_text(study, ended=True)


def test_the_flag_policy_flags_the_observer_in_the_analysis(audit):
    made = create_study(
        audit, "flagged", config=DesignConfig(n_trials=3, n_practice=0, n_catch=2, size=16, seed=9), n_observers=1
    )
    store, study = open_study_dir(made.folder)
    with store:
        observer = store.get_observer(study.id, made.observer_codes[0])
        session = store.start_session(observer.id)
        while (trial := store.next_trial(observer.id)) is not None:
            wrong = "left" if trial.correct_side == "right" else "right"
            store.record_response(session.id, trial.trial_id, wrong if trial.kind == "catch" else trial.correct_side)
        assert not store.progress(observer.id).ended  # flag: the observer goes on to the end
    result = CliRunner().invoke(
        __import__("human_study.cli", fromlist=["study_app"]).study_app,
        ["analyze", "--study-dir", str(made.folder), "--token", made.admin_token],
    )
    assert "flagged: subject-01 failed 2 of 2 attention checks" in result.output, result.output


# --------------------------------------------------------------------------- migration
def test_a_version_1_study_database_opens_and_gains_the_new_columns(audit):
    made = create_study(audit, "old", config=DesignConfig(n_trials=3, n_practice=0, size=16, seed=10), n_observers=1)
    store, study = open_study_dir(made.folder)
    with store:
        observer = store.get_observer(study.id, made.observer_codes[0])
        session = store.start_session(observer.id)
        trial = store.next_trial(observer.id)
        store.record_response(session.id, trial.trial_id, "left", rt_ms=900.0)
    # make it the database an older ddd-audit wrote: version 1, without version 2's columns
    with sqlite3.connect(made.folder / "study.db") as db:
        db.execute("DROP INDEX uq_observers_study_participant")
        for table, columns in (
            ("observers", ("consented_at", "participant_id", "ended_reason")),
            ("sessions", ("px_per_mm", "viewing_distance_mm", "participant_id", "recruitment_study_id",
                          "recruitment_session_id", "refresh_ms")),
            ("responses", ("phases",)),
        ):
            for column in columns:
                db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version VALUES (1, '2025-01-01 00:00:00')")
        assert "phases" not in [r[1] for r in db.execute("PRAGMA table_info(responses)")]
    store, study = open_study_dir(made.folder)
    with store:
        observer = store.get_observer(study.id, made.observer_codes[0])
        assert store.progress(observer.id).n_answered == 1  # the old answer is there
        session = store.start_session(observer.id, recruitment={"participant_id": PID})
        store.set_calibration(session.id, Calibration(3.78, 600.0))
        trial = store.next_trial(observer.id)
        store.record_response(session.id, trial.trial_id, "right", rt_ms=700.0, phases={"fixation": 300.04})
        frame = store.admin(study.id, made.admin_token).responses_frame()
    assert frame["fixation_ms"].tolist()[1] == 300.0 and math.isnan(frame["fixation_ms"].tolist()[0])
    with sqlite3.connect(made.folder / "study.db") as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [1, 2, SCHEMA_VERSION] == [1, 2, 3]
