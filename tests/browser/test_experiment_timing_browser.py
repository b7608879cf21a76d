"""The trial sequence in real headless Chromium: fixation 300 ms, the pair for at most 200 ms,
then a noise mask until the answer, and a blank inter-trial interval of 500 ms. The durations
the browser measured (stored with each answer) must be the set ones within one frame at 60 Hz,
and no screenshot taken while one trial gives way to the next may show one trial's number with
the other trial's images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from human_study.design import DesignConfig
from human_study.folder import create_study, open_study_dir
from human_study.links import observer_link
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium
from tests.browser.test_experiment_browser import serve_experiment_page
from tests.study_fixtures import make_study_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXATION_MS, STIMULUS_MS, ITI_MS = 300, 200, 500
FRAME_MS = 17  # one frame at 60 Hz
N_TRIALS, SIZE = 8, 96
N_WATCHED = 3  # transitions filmed with screenshots

STATE = """() => {
  const header = document.querySelector('[data-xp-header]');
  return {
    phase: document.documentElement.dataset.xpPhase || null,
    header: header ? Number(header.dataset.xpHeader) : null,
    text: header ? header.textContent : null,
    images: Array.from(document.querySelectorAll('img[data-xp-trial]')).map((i) => Number(i.dataset.xpTrial)),
  };
}"""


@pytest.fixture()
def made(tmp_path):
    audit = make_study_audit(tmp_path / "audit", image_shape=(24, 24, 3))
    config = DesignConfig(
        n_trials=N_TRIALS, n_practice=0, size=SIZE, seed=41, break_every=0,
        fixation_ms=FIXATION_MS, stimulus_ms=STIMULUS_MS, mask=True, iti_ms=ITI_MS,
    )
    return create_study(audit, "timing", config=config, n_observers=1)


@pytest.fixture()
def server(made, tmp_path):
    with serve_experiment_page(tmp_path) as url:
        yield url


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def shown_trial(shot: np.ndarray, boxes: dict, stimuli: dict) -> int | None:
    """The trial whose two images are in the image boxes of a screenshot, or None."""
    crops = {side: shot[y:y + SIZE, x:x + SIZE] for side, (x, y) in boxes.items()}
    for trial_id, images in stimuli.items():
        if all(np.abs(crops[side] - images[side]).mean() < 4 for side in ("left", "right")):
            return trial_id
    return None


def test_phases_last_their_set_times_and_no_frame_mixes_two_trials(made, server):
    from playwright.sync_api import sync_playwright

    store, study = open_study_dir(made.folder)
    with store:
        observer = store.get_observer(study.id, made.observer_codes[0])
        schedule = store.schedule(observer.id)
    folder = Path(made.folder) / "images"
    stimuli = {
        t.trial_id: {
            side: np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.int16)
            for side, name in (("left", t.left_file), ("right", t.right_file))
        }
        for t in schedule
    }
    filmed = []  # (DOM state before, trial in the pixels, DOM state after)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.set_default_timeout(60_000)  # a busy 2-core machine: a rerun can take long
            page.goto(observer_link(server, made.study_id, made.observer_codes[0]))
            page.locator(".st-key-xp_consent button").click()
            page.locator(".st-key-xp_start button").wait_for(state="visible")
            # observers see no Streamlit chrome, and the page is the study's mid-grey
            assert not page.locator('[data-testid="stToolbar"]').is_visible()
            assert not page.locator('header[data-testid="stHeader"]').is_visible()
            page.keyboard.press("Enter")
            boxes = None
            for k, trial in enumerate(schedule):
                page.wait_for_function(
                    "id => document.documentElement.dataset.xpPhase === 'mask'"
                    " && document.documentElement.dataset.xpTrial === String(id)",
                    arg=trial.trial_id,
                )
                if boxes is None:  # the layout is the same for every trial
                    shot = pixels(page.screenshot())
                    assert tuple(shot[5, 5]) == (128, 128, 128)
                    assert page.get_by_text(f"Trial 1 of {N_TRIALS}").is_visible()
                    boxes = {}
                    for side in ("left", "right"):
                        box = page.locator(f".xp-side:{'first' if side == 'left' else 'last'}-child .xp-image").bounding_box()
                        boxes[side] = (round(box["x"]), round(box["y"]))
                page.keyboard.press("ArrowLeft" if k % 2 else "ArrowRight")
                if k >= N_WATCHED or k == len(schedule) - 1:
                    continue
                nxt = schedule[k + 1].trial_id
                for _ in range(60):  # film until the next pair has been on screen a while
                    before = page.evaluate(STATE)
                    on_screen = shown_trial(pixels(page.screenshot()), boxes, stimuli)
                    after = page.evaluate(STATE)
                    filmed.append((before, on_screen, after))
                    if before["header"] == nxt and before["phase"] == "mask":
                        break
            page.get_by_text("you are done").wait_for()
        finally:
            browser.close()

    checked = [(b, seen) for b, seen, a in filmed if b == a]  # the DOM did not change during the shot
    for state, seen in checked:
        # the pair in the pixels is the header's trial, and a pair never shows without its header
        assert seen is None or seen == state["header"], (state, seen)
        assert state["images"] in ([], [state["header"]] * 2), state
        if state["header"] is not None:
            number = next(t.number for t in schedule if t.trial_id == state["header"])
            assert state["text"] == f"Trial {number} of {N_TRIALS}"
    phases_seen = {s["phase"] for s, _ in checked}
    assert {"blank", "fixation"} <= phases_seen, phases_seen  # the transitions were filmed
    assert sum(seen is not None for _, seen in checked) >= N_WATCHED

    store, study = open_study_dir(made.folder)
    with store:
        frame = store.admin(study.id, made.admin_token).responses_frame()
    assert len(frame) == N_TRIALS and set(frame["rt_source"]) == {"client"}
    # The phases of the filmed trials (those after the first N_WATCHED answers) are not timed: a screenshot
    # stalls the browser's compositor for as long as the machine takes to grab it, and on a busy machine
    # that is longer than a frame. Every other trial is timed to the frame.
    index = {t.trial_id: k for k, t in enumerate(schedule)}
    timed = frame[~frame["trial_id"].map(index).between(1, N_WATCHED)]
    assert len(timed) == N_TRIALS - N_WATCHED
    for column, target in (("iti_ms", ITI_MS), ("fixation_ms", FIXATION_MS), ("stimulus_ms", STIMULUS_MS)):
        error = (timed[column] - target).abs()
        assert (error <= FRAME_MS).all(), (column, timed[column].tolist())
    assert (frame["mask_ms"] > 0).all()  # each answer came during the mask
    # the response time runs from the pair's onset: the stimulus and the mask before the answer
    assert np.allclose(frame["rt_ms"], frame["stimulus_ms"] + frame["mask_ms"], atol=0.2)


def test_a_full_screen_study_asks_for_full_screen_before_the_first_pair(made, server):
    from playwright.sync_api import sync_playwright

    audit = Path(made.folder).parents[1]  # the server finds every study of this audit
    full = create_study(
        audit, "fullscreen",
        config=DesignConfig(n_trials=2, n_practice=0, size=SIZE, seed=43, fullscreen=True, background="#404040"),
        n_observers=1,
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.set_default_timeout(60_000)  # a busy 2-core machine: a rerun can take long
            page.goto(observer_link(server, full.study_id, full.observer_codes[0]))
            page.locator(".st-key-xp_consent button").click()
            page.locator(".st-key-xp_start button").click()
            button = page.locator("[data-xp-fullscreen]")
            button.wait_for(state="visible")
            assert page.locator("img[data-xp-trial]").count() == 0  # no pair before full screen
            assert tuple(pixels(page.screenshot())[5, 5]) == (64, 64, 64)  # the study's background
            button.click()
            page.wait_for_function("document.documentElement.dataset.xpPhase === 'stimulus'")
            assert page.evaluate("document.fullscreenElement !== null")
            page.keyboard.press("ArrowLeft")
            page.wait_for_function("document.documentElement.dataset.xpPhase === 'stimulus'"
                                   " && document.documentElement.dataset.xpAnswered !== document.documentElement.dataset.xpTrial")
            assert page.locator("[data-xp-fullscreen]").count() == 0  # asked once, while in full screen
        finally:
            browser.close()
