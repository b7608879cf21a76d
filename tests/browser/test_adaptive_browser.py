"""One observer takes an adaptive study (QUEST+) in real headless Chromium: 20 trials, a reload after the
tenth. The pair on screen after the reload must be the one whose level QUEST+ computes from the stored
responses alone, the next pairs' images must have been decoded ahead, and the session must hold the display's
refresh interval, measured from requestAnimationFrame."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from human_study.adaptive import make_procedure
from human_study.design import DesignConfig
from human_study.folder import create_study, open_study_dir
from human_study.links import observer_link
from human_study.schema import reading, sessions
from human_study.visit import Store
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium
from tests.browser.test_experiment_browser import (
    ready_trial,
    serve_experiment_page,
    wait_button,
    wait_new_trial,
)
from tests.study_fixtures import write_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_MODELS, N_TRIALS, RELOAD_AFTER = 20, 20, 10


@pytest.fixture()
def made(tmp_path):
    rng = np.random.default_rng(4)
    audit = write_audit(tmp_path / "audit", rng.integers(0, N_MODELS + 1, 600), rng.integers(0, 3, 600),
                        n_models=N_MODELS, n_classes=3, image_shape=(24, 24, 3))
    config = DesignConfig(design="adaptive", n_trials=N_TRIALS, n_practice=0, break_every=0, size=96, seed=8,
                          pairs_per_level=N_TRIALS)
    return create_study(audit, "adaptive", config=config, n_observers=1)


@pytest.fixture()
def server(made, tmp_path):
    with serve_experiment_page(tmp_path) as url:
        yield url


def replayed(made) -> tuple[dict[int, float], float, int]:
    """From the database alone, in a store of its own: every trial's level, the level a fresh QUEST+ fed
    the stored answers asks for next, and the number of answers."""
    with Store(made.db_url) as store:
        study = store.get_study(made.study_id)
        with reading(store.engine) as conn:
            pool = store.planner().pool(conn, study)
        frame = store.admin(study.id, made.admin_token).responses_frame().sort_values("position")
    levels = {t.id: t.level for t in pool}
    quest = make_procedure("quest", sorted({t.level for t in pool if t.kind == "main"}), lapse=study.config["lapse"])
    for level, correct in zip(frame["level"], frame["correct"], strict=True):
        quest.update(float(level), bool(correct))
    return levels, quest.next_level(), len(frame)


def test_twenty_adaptive_trials_with_a_reload(made, server):
    from playwright.sync_api import sync_playwright

    keys = ["ArrowLeft" if k % 3 else "ArrowRight" for k in range(N_TRIALS)]  # a fixed pattern of answers
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.set_default_timeout(60_000)  # a busy 2-core machine: a rerun can take long
            page.goto(observer_link(server, made.study_id, made.observer_codes[0]))
            wait_button(page, "xp_consent").click()
            wait_button(page, "xp_start")
            page.keyboard.press("Enter")
            trial = None
            for number in range(RELOAD_AFTER):
                trial = wait_new_trial(page, trial)
                page.keyboard.press(keys[number])
            trial = wait_new_trial(page, trial)  # trial 11 on screen, unanswered
            preloaded = int(page.evaluate("document.documentElement.dataset.xpPreloaded || '0'"))
            page.reload()
            wait_button(page, "xp_resume").click()
            after = wait_new_trial(page, None)
            levels, expected, n_answered = replayed(made)
            assert n_answered == RELOAD_AFTER
            assert after == trial  # the same pair after the reload
            assert levels[int(after)] == pytest.approx(expected)  # QUEST+'s level from the stored answers
            assert page.get_by_text(f"Trial {RELOAD_AFTER + 1} of {N_TRIALS}").is_visible()
            for number in range(RELOAD_AFTER, N_TRIALS):
                if number > RELOAD_AFTER:
                    after = wait_new_trial(page, after)
                    assert ready_trial(page) == after
                page.keyboard.press(keys[number])
            page.get_by_text("you are done").wait_for()
        finally:
            browser.close()

    # trials 2-10 each showed a pair decoded while the one before it was on screen
    assert preloaded >= 2 * (RELOAD_AFTER - 1)
    store, study = open_study_dir(made.folder)
    with store:
        frame = store.admin(study.id, made.admin_token).responses_frame()
        with reading(store.engine) as conn:
            refresh = conn.execute(sa.select(sessions.c.refresh_ms).order_by(sessions.c.id)).scalars().all()
    assert frame["position"].tolist() == list(range(N_TRIALS)) and frame["trial_id"].is_unique
    assert frame["choice"].tolist() == ["left" if k == "ArrowLeft" else "right" for k in keys]
    assert frame["session_index"].value_counts().to_dict() == {1: RELOAD_AFTER, 2: N_TRIALS - RELOAD_AFTER}
    assert len(refresh) == 2 and all(r is not None and 4 < r < 50 for r in refresh)  # 60 Hz is 16.7 ms
