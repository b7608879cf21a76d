"""The experiment page through Streamlit's AppTest: consent, instructions, practice with
feedback, trials with progress and breaks, a reload that resumes, the debrief, and bad links.

AppTest runs no JavaScript: a trial is the trial player's data, and an answer is what the
player's callback does with the browser's message (human_study.experiment.submit_answer)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from audit_app._study import open_study
from human_study import experiment as xp
from human_study.design import CATCH_TRIAL_NOTE, QUESTIONS, DesignConfig
from human_study.folder import STUDY_DIRS_ENV, create_study, open_study_dir
from human_study.schema import studies
from tests.study_fixtures import make_study_audit

PAGE = str(Path(__file__).resolve().parents[1] / "audit_app" / "experiment.py")


def set_break_every(folder, n: int) -> None:
    """Give a study a break every n test trials (stored in its config, before the app opens it)."""
    store, study = open_study_dir(folder)
    with store.engine.begin() as conn:
        conn.execute(
            studies.update().where(studies.c.id == study.id).values(config={**study.config, "break_every": n})
        )
    store.close()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("page") / "audit")
    created = create_study(
        audit,
        "page",
        config=DesignConfig(n_trials=8, n_practice=2, n_catch=1, size=16, seed=21),
        n_observers=5,
    )
    set_break_every(created.folder, 4)
    FOLDERS[created.study_id] = created.folder.resolve()
    return created


@pytest.fixture(scope="module")
def store(made):
    store, _ = open_study_dir(made.folder)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def study_dirs(made, monkeypatch):
    monkeypatch.setenv(STUDY_DIRS_ENV, str(made.folder.parent.parent))


def open_page(query: dict | None = None, *, audit_dir=None, state_key="audit_dir") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    if audit_dir is not None:
        at.session_state[state_key] = str(audit_dir)
    return at.run()


def text_of(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def screen_of(at: AppTest) -> str:
    if at.get("bidi_component"):
        return "trial"
    keys = {b.key for b in at.button}
    for key, screen in (
        ("xp_consent", "consent"),
        ("xp_calibrated", "calibration"),
        ("xp_start", "instructions"),
        ("xp_next", "feedback"),
        ("xp_begin", "practice_done"),
        ("xp_resume_break", "break"),
        ("xp_resume", "welcome_back"),
    ):
        if key in keys:
            return screen
    return "debrief" if "Thank you" in text_of(at) else "?"


def player_data(at: AppTest) -> dict:
    """The data the trial player got: one trial, its images, header and sequence."""
    (player,) = at.get("bidi_component")
    return json.loads(player.proto.json)


def progress_text(at: AppTest) -> str:
    return player_data(at)["header"]


def shown_trial(at: AppTest) -> int:
    return player_data(at)["trial_id"]


def stimuli(at: AppTest) -> list[str]:
    """The stimulus <img> HTML on the page (the feedback's pair)."""
    return [h.proto.body for h in at.get("html") if "data-xp-trial" in h.proto.body]


FOLDERS: dict[str, Path] = {}  # study id -> folder, of the studies made here


def answer(at: AppTest, side: str, **browser) -> AppTest:
    """What the player's callback does with an answer from the browser (through the page's own
    cached store), then the rerun."""
    visit = at.session_state["xp_visit"]
    store, _ = open_study(str(FOLDERS[visit.study_id]))
    xp.submit_answer(store, visit, shown_trial(at), side, **browser)
    return at.run()


def test_one_observer_from_consent_to_debrief_with_a_reload(made, store):
    code = made.observer_codes[0]
    observer = store.get_observer(made.study_id, code)
    schedule = store.schedule(observer.id)
    by_id = {t.trial_id: t for t in schedule}
    query = {"study": made.study_id, "observer": code.lower()}  # codes are case-insensitive

    at = open_page(query)
    assert not at.exception and screen_of(at) == "consent"
    assert "11 pairs" in text_of(at) and not stimuli(at) and not at.get("bidi_component")
    at.button(key="xp_consent").click().run()
    assert screen_of(at) == "instructions"
    assert QUESTIONS["harder"] in text_of(at) and CATCH_TRIAL_NOTE in text_of(at)
    assert "break every 4 trials" in text_of(at)
    at.button(key="xp_start").click().run()

    # practice 1: right answer, feedback says so and frames the right image
    assert screen_of(at) == "trial" and progress_text(at) == "Practice trial 1 of 2"
    assert len(at.get("bidi_component")) == 1  # the browser's trial player runs the trial
    trial = by_id[shown_trial(at)]
    assert trial == schedule[0]
    data = player_data(at)
    assert data["left"].startswith("data:image/png;base64,") and data["left"] != data["right"]
    assert data["question"] == QUESTIONS["harder"] and data["size"] == 16
    assert data["sequence"] == {"fixation_ms": 0, "stimulus_ms": None, "mask": False, "iti_ms": 0}  # meding2022
    answer(at, trial.correct_side)
    assert screen_of(at) == "feedback" and at.success and "Correct" in at.success[0].value
    framed = [("#2e7d32" in body) for body in stimuli(at)]
    assert framed == [trial.correct_side == "left", trial.correct_side == "right"]
    assert store.progress(observer.id).n_answered == 1  # committed before the next screen
    at.button(key="xp_next").click().run()

    # practice 2: wrong answer
    trial = by_id[shown_trial(at)]
    assert trial == schedule[1] and progress_text(at) == "Practice trial 2 of 2"
    answer(at, "left" if trial.correct_side == "right" else "right")
    assert screen_of(at) == "feedback" and "Not quite" in at.error[0].value
    at.button(key="xp_next").click().run()
    assert screen_of(at) == "practice_done" and "no feedback" in text_of(at)
    at.button(key="xp_begin").click().run()

    # main trials: no feedback, progress counts the test block, a break after 4
    answered = 2
    for number in range(1, 5):
        assert screen_of(at) == "trial" and progress_text(at) == f"Trial {number} of 9"
        trial = by_id[shown_trial(at)]
        assert trial == schedule[answered]
        answer(at, "left")
        answered += 1
        assert not at.success and not at.error
    assert screen_of(at) == "break" and "4 of 9" in text_of(at)
    at.button(key="xp_resume_break").click().run()
    for _ in range(2):
        answer(at, "right")
        answered += 1
    assert progress_text(at) == "Trial 7 of 9"

    # the browser reloads: a new session that resumes at the first unanswered trial
    at = open_page(query)
    # where the observer stands counts the main part only: 5 of 9, not 7 of 11 with the practice
    assert screen_of(at) == "welcome_back" and f"answered {answered - 2} of 9 trials" in text_of(at)
    at.button(key="xp_resume").click().run()
    assert progress_text(at) == "Trial 7 of 9" and by_id[shown_trial(at)] == schedule[answered]
    while screen_of(at) in ("trial", "break"):
        if screen_of(at) == "break":
            assert "8 of 9" in text_of(at)
            at.button(key="xp_resume_break").click().run()
            continue
        answer(at, "left")
        answered += 1
    assert not at.exception and screen_of(at) == "debrief" and answered == 11
    assert "accuracy" not in text_of(at).lower() and "%" not in text_of(at)  # no analysis for observers

    # the database holds exactly the answered trials, in order, once each
    frame = store.admin(made.study_id, made.admin_token).responses_frame()
    mine = frame[frame["observer_id"] == observer.id]
    assert mine["position"].tolist() == list(range(11)) and mine["trial_id"].is_unique
    assert mine["trial_id"].tolist() == [t.trial_id for t in schedule]
    assert Counter(mine["session_index"]) == {1: 8, 2: 3}
    assert set(mine["rt_source"]) == {"server"} and (mine["rt_ms"] >= 0).all()  # no browser here
    assert mine["correct"].tolist()[:2] == [True, False]
    assert store.get_observer(made.study_id, code).finished_at is not None

    # coming back after the end shows the debrief again, never a trial
    at = open_page(query)
    assert screen_of(at) == "debrief" and not stimuli(at) and not at.get("bidi_component")
    assert (
        len(
            store.admin(made.study_id, made.admin_token)
            .sessions_frame()
            .query(f"ordinal == {observer.ordinal}")
        )
        == 3
    )


def test_a_reload_in_the_practice_resumes_there(made, store):
    code = made.observer_codes[1]
    query = {"study": made.study_id, "observer": code}
    at = open_page(query)
    at.button(key="xp_consent").click().run()
    at.button(key="xp_start").click().run()
    answer(at, "left")
    assert screen_of(at) == "feedback"
    at = open_page(query)  # reload during the feedback: the answer is stored, go on
    assert screen_of(at) == "welcome_back"
    at.button(key="xp_resume").click().run()
    assert progress_text(at) == "Practice trial 2 of 2"
    assert store.progress(store.get_observer(made.study_id, code).id).n_answered == 1


def test_the_routers_audit_dir_is_enough_to_find_the_study(made, monkeypatch):
    monkeypatch.delenv(STUDY_DIRS_ENV)
    query = {"study": made.study_id, "observer": made.observer_codes[2]}
    at = open_page(query)
    assert at.error and "no study with this link" in at.error[0].value
    for key in ("audit_dir", "audit_path"):
        at = open_page(query, audit_dir=made.folder.parent.parent, state_key=key)
        assert not at.error and screen_of(at) == "consent"


@pytest.mark.parametrize(
    "query, message",
    [
        ({}, "needs a study link"),
        ({"observer": "ABCDEFGH"}, "needs a study link"),
        ({"study": "zzz", "observer": "ABCDEFGH"}, "not valid"),
        ({"study": "0123456789ab", "observer": "ABCDEFGH"}, "no study with this link"),
        ({"study": "'; DROP TABLE studies; --", "observer": "ABCDEFGH"}, "not valid"),
        ({"study": "STUDY"}, "no observer code"),
        ({"study": "STUDY", "observer": "NOBODY"}, "no observer with this code"),
        ({"study": "STUDY", "observer": "<script>alert(1)</script>"}, "not valid"),
        ({"study": ["STUDY", "STUDY"], "observer": "CODE"}, "needs a study link"),
        ({"study": "STUDY", "observer": ["CODE", "CODE"]}, "no observer code"),
    ],
)
def test_bad_links_get_a_friendly_message(made, query, message):
    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value.replace("STUDY", made.study_id).replace("CODE", made.observer_codes[3])

    at = open_page({k: fill(v) for k, v in query.items()})
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value and at.error[0].value.startswith("Sorry,")
    assert not at.button and not at.get("html")


def test_a_database_that_fails_to_save_keeps_the_trial(made, store, monkeypatch):
    code = made.observer_codes[4]
    at = open_page({"study": made.study_id, "observer": code})
    at.button(key="xp_consent").click().run()
    at.button(key="xp_start").click().run()
    first = shown_trial(at)
    page_store, _ = open_study(str(made.folder.resolve()))

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    with monkeypatch.context() as patch:
        patch.setattr(page_store, "record_response", broken)
        answer(at, "left")
        assert screen_of(at) == "trial" and shown_trial(at) == first
        assert at.warning and "could not be saved" in at.warning[0].value
    answer(at, "left")
    assert screen_of(at) == "feedback" and not at.warning
    assert store.progress(store.get_observer(made.study_id, code).id).n_answered == 1


def test_sessions_are_one_per_page_load(made, store):
    admin = store.admin(made.study_id, made.admin_token)
    observer = admin.add_observers(1)[0]
    query = {"study": made.study_id, "observer": observer.code}
    at = open_page(query)
    at.button(key="xp_consent").click().run()  # reruns are not new sessions
    at.run()
    open_page(query)
    sessions = admin.sessions_frame()
    assert (sessions["ordinal"] == observer.ordinal).sum() == 2


def test_a_missing_stimulus_file_gets_a_message_not_a_traceback(tmp_path, monkeypatch):
    audit = make_study_audit(tmp_path / "audit")
    created = create_study(
        audit, "broken", config=DesignConfig(n_trials=3, n_practice=1, size=16, seed=2), n_observers=1
    )
    for png in (created.folder / "images").glob("*.png"):
        png.unlink()
    monkeypatch.setenv(STUDY_DIRS_ENV, str(tmp_path / "audit"))
    at = open_page({"study": created.study_id, "observer": created.observer_codes[0]})
    at.button(key="xp_consent").click().run()
    at.button(key="xp_start").click().run()
    assert not at.exception
    assert at.error and "cannot be read; please tell the researcher" in at.error[0].value
    assert not stimuli(at) and not at.get("bidi_component")
