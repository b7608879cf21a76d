"""One observer takes the experiment in real headless Chromium, answering with the keyboard:
consent, practice with feedback, 12 trials with breaks and a reload in the middle; then the
database must hold exactly the answered trials, with response times measured in the browser."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from human_study.design import DesignConfig
from human_study.folder import STUDY_DIRS_ENV, create_study, open_study_dir
from human_study.links import observer_link
from human_study.schema import studies
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium, serve_streamlit
from tests.study_fixtures import make_study_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "audit_app" / "experiment.py"
SHOTS = ROOT / "test-artifacts" / "screenshots"
N_PRACTICE, N_TRIALS, BREAK_EVERY = 2, 12, 5
WAIT_MS = 700


@pytest.fixture()
def made(tmp_path):
    audit = make_study_audit(tmp_path / "audit", image_shape=(24, 24, 3))
    created = create_study(
        audit,
        "browser",
        config=DesignConfig(n_trials=N_TRIALS, n_practice=N_PRACTICE, size=224, seed=31),
        n_observers=1,
    )
    store, study = open_study_dir(created.folder)
    with store.engine.begin() as conn:  # a break every 5 trials, so the run meets two breaks
        conn.execute(
            studies.update()
            .where(studies.c.id == study.id)
            .values(config={**study.config, "break_every": BREAK_EVERY})
        )
    store.close()
    return created


# What app.py must do for a link with ?study=: a wide layout and only the experiment page, at
# /experiment (the path of the links that `ddd-audit study create` prints). The experiment is
# not the default page, because Streamlit serves the default page at "/" only ("Page not
# found" at /experiment); the default page forwards "/?study=..." to it.
ROUTER = """
import streamlit as st

st.set_page_config(page_title="ddd-audit", layout="wide")
experiment = st.Page({page!r}, title="Experiment", url_path="experiment")


def forward():
    st.switch_page(experiment, query_params=st.query_params.to_dict())


st.navigation([st.Page(forward, title="Start", default=True), experiment], position="hidden").run()
"""


@contextlib.contextmanager
def serve_experiment_page(tmp_path: Path):
    """A router script for the experiment page, served by streamlit on 127.0.0.1 and a free port, for the
    studies under tmp_path/audit; yields its URL."""
    router = tmp_path / "router.py"
    router.write_text(ROUTER.format(page=str(PAGE)))
    # The page imports audit_app/ helpers, which app.py finds beside it; this router, in tmp_path, needs the root.
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, STUDY_DIRS_ENV: str(tmp_path / "audit"), "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath}
    with serve_streamlit(router, cwd=tmp_path, env=env, log_path=tmp_path / "streamlit.log", timeout=60) as url:
        yield url


@pytest.fixture()
def server(made, tmp_path):
    with serve_experiment_page(tmp_path) as url:
        yield url


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"experiment-{name}.png"), full_page=True)


def ready_trial(page) -> str | None:
    """The trial whose pair the trial player shows (or showed last)."""
    return page.evaluate("document.documentElement.dataset.xpReady || null")


def wait_new_trial(page, previous: str | None) -> str:
    """Wait until the trial player reports a trial other than `previous` on screen (images loaded)."""
    page.wait_for_function(
        "prev => { const r = document.documentElement.dataset.xpReady; return !!r && r !== prev; }",
        arg=previous,
    )
    return ready_trial(page)


def wait_button(page, key: str):
    button = page.locator(f".st-key-{key} button")
    button.wait_for(state="visible")
    return button


def test_keyboard_run_with_a_reload_keeps_every_answer_once(made, server):
    from playwright.sync_api import sync_playwright

    code = made.observer_codes[0]
    link = observer_link(server, made.study_id, code)  # the link the CLI prints
    pressed: list[str] = []  # the choice of every answered trial, in order

    def press(page, key: str) -> None:
        page.keyboard.press(key)
        pressed.append("left" if key == "ArrowLeft" else "right")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.set_default_timeout(60_000)  # a busy 2-core machine: a rerun can take long
            page.goto(link)
            agree = wait_button(page, "xp_consent")
            assert page.get_by_text("Page not found").count() == 0
            shot(page, "01-consent")
            agree.click()
            wait_button(page, "xp_start")
            shot(page, "02-instructions")
            page.keyboard.press("Enter")  # the start button's shortcut

            # practice: two trials with feedback; the first answer is a double press
            trial = wait_new_trial(page, None)
            shot(page, "03-practice-trial")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowLeft")  # the second press must not answer anything
            pressed.append("left")
            wait_button(page, "xp_next")
            shot(page, "04-practice-feedback")
            page.keyboard.press("Enter")
            trial = wait_new_trial(page, trial)
            press(page, "ArrowRight")
            wait_button(page, "xp_next")
            page.keyboard.press("Enter")
            wait_button(page, "xp_begin")
            shot(page, "05-practice-done")
            page.keyboard.press("Enter")

            # main trials 1-7, with a break after 5
            for number in range(1, 8):
                trial = wait_new_trial(page, trial)
                if number == 1:
                    assert page.get_by_text(f"Trial 1 of {N_TRIALS}").is_visible()
                    shot(page, "06-main-trial")
                if number == 3:
                    page.wait_for_timeout(WAIT_MS)  # this RT is at least WAIT_MS
                press(page, "ArrowLeft" if number % 3 else "ArrowRight")
                if number == BREAK_EVERY:
                    wait_button(page, "xp_resume_break")
                    shot(page, "07-break")
                    page.keyboard.press("Enter")
            trial = wait_new_trial(page, trial)  # trial 8 is on screen, unanswered

            # the browser reloads: a new session that resumes at trial 8
            page.reload()
            resume = wait_button(page, "xp_resume")
            shot(page, "08-welcome-back")
            resume.click()
            trial = wait_new_trial(page, None)
            assert page.get_by_text(f"Trial 8 of {N_TRIALS}").is_visible()
            # one answer by mouse: the click is timed in the browser too, and stored once
            page.locator('[data-xp-choice="right"]').click()
            pressed.append("right")
            for number in range(9, N_TRIALS + 1):
                trial = wait_new_trial(page, trial)
                press(page, "ArrowRight" if number % 2 else "ArrowLeft")
                if number == 2 * BREAK_EVERY:
                    wait_button(page, "xp_resume_break")
                    page.keyboard.press("Enter")
            page.get_by_text("you are done").wait_for()
            # the last trial's images and buttons go once the run ends: nothing left to answer
            page.wait_for_function("document.querySelectorAll('img[data-xp-trial]').length === 0")
            assert page.locator("[data-xp-choice]").count() == 0
            shot(page, "09-debrief")
        finally:
            browser.close()

    store, study = open_study_dir(made.folder)
    try:
        observer = store.get_observer(study.id, code)
        schedule = store.schedule(observer.id)
        frame = store.admin(study.id, made.admin_token).responses_frame()
        sessions = store.admin(study.id, made.admin_token).sessions_frame()
    finally:
        store.close()
    assert len(pressed) == N_PRACTICE + N_TRIALS == len(schedule)
    assert frame["position"].tolist() == list(range(len(schedule)))  # no loss, no duplicate
    assert frame["trial_id"].tolist() == [t.trial_id for t in schedule] and frame["trial_id"].is_unique
    assert frame["choice"].tolist() == pressed
    assert frame["session_index"].value_counts().to_dict() == {1: N_PRACTICE + 7, 2: N_TRIALS - 7}
    assert len(sessions) == 2 and "Chrome" in sessions["user_agent"].iloc[0]
    assert set(frame["rt_source"]) == {"client"}
    assert ((frame["rt_ms"] > 0) & (frame["rt_ms"] < 60_000)).all()
    assert WAIT_MS <= frame["rt_ms"].iloc[N_PRACTICE + 2] < WAIT_MS + 5_000  # timed from the display
    assert observer.finished_at is not None
