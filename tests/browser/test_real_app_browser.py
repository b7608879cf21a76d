"""The real app.py in headless Chromium: started for a study (`-- --study DIR`), an observer goes
through consent and a trial, and a link with `?study=` removed (or any other URL) shows nothing of
the report; started for an audit, the Overview names models at chance and an interrupted run, and
Compare says why there is nothing to compare.
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audit.store import AuditDir, current_process
from human_study.design import DesignConfig
from human_study.folder import STUDY_DIRS_ENV, create_study, open_study_dir
from human_study.links import observer_link
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium, serve_streamlit
from tests.study_fixtures import make_study_audit
from tests.test_app_chance import make_chance_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
REPORT_WORDS = ("trivial", "impossible", "inconclusive", "overview", "consistency", "n_correct")
N_TRIALS = 4


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("real-app") / "audit", image_shape=(24, 24, 3))
    return create_study(
        audit, "browser", config=DesignConfig(n_trials=N_TRIALS, n_practice=0, size=128, seed=17), n_observers=2
    )


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != STUDY_DIRS_ENV}
    return {**env, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def study_app(made, tmp_path_factory):
    """The real app.py, started for the study as the README says (the report's audit is beside it)."""
    chromium()
    pytest.importorskip("playwright.sync_api")
    cwd = tmp_path_factory.mktemp("study-app")
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--study", str(made.folder)], cwd=cwd, env=environment(),
                         log_path=cwd / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def settle(page) -> None:
    """Wait until the script run is over (the running indicator is gone)."""
    page.wait_for_selector('[data-testid="stMain"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(600)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


def wait_new_trial(page, previous: str | None) -> str:
    page.wait_for_function(
        "prev => { const r = document.documentElement.dataset.xpReady; return !!r && r !== prev; }", arg=previous
    )
    return page.evaluate("document.documentElement.dataset.xpReady")


def test_an_observer_takes_the_study_on_the_real_app(made, study_app, page):
    code = made.observer_codes[0]
    page.goto(observer_link(study_app, made.study_id, code))  # the link `study create` prints
    agree = page.locator(".st-key-xp_consent button")
    agree.wait_for(state="visible")
    settle(page)
    no_exception(page)
    shot(page, "study-serving-consent")
    assert page.get_by_text("Page not found").count() == 0
    assert page.locator('[data-testid="stSidebar"]').count() == 0  # no navigation
    agree.click()
    start = page.locator(".st-key-xp_start button")
    start.wait_for(state="visible")
    start.click()
    trial = wait_new_trial(page, None)
    assert page.get_by_text(f"Trial 1 of {N_TRIALS}").is_visible()
    shot(page, "study-serving-trial")
    page.keyboard.press("ArrowLeft")
    wait_new_trial(page, trial)
    assert page.get_by_text(f"Trial 2 of {N_TRIALS}").is_visible()
    no_exception(page)

    store, study = open_study_dir(made.folder)
    try:
        frame = store.admin(study.id, made.admin_token).responses_frame()
        observer = store.get_observer(study.id, code)
        first = store.schedule(observer.id)[0]
    finally:
        store.close()
    assert len(frame) == 1 and frame["trial_id"].tolist() == [first.trial_id]
    assert frame["choice"].tolist() == ["left"] and frame["rt_source"].tolist() == ["client"]


@pytest.mark.parametrize(
    "path",
    ["/", "/experiment", "/?observer={code}", "/experiment?observer={code}", "/overview", "/compare", "/results"],
    ids=["root", "experiment", "root-with-code", "experiment-with-code", "overview", "compare", "results"],
)
def test_a_link_without_its_study_shows_no_report(made, study_app, page, path):
    page.goto(study_app + path.format(code=made.observer_codes[1]))
    settle(page)
    no_exception(page)
    text = page.locator("body").inner_text().lower()
    for word in REPORT_WORDS:
        assert word not in text, f"{word!r} on {path}"
    assert str(made.folder).lower() not in text and made.study_id not in text
    assert page.locator('[data-testid="stVegaLiteChart"], [data-testid="stMetric"]').count() == 0
    if path == "/?observer={code}":
        assert "personal link" in text
        shot(page, "study-serving-without-study")
    if path == "/results":
        page.locator("input").first.wait_for()  # the token field's component may load after the page's text
        text = page.locator("body").inner_text().lower()
        assert "admin token" in text and page.locator("input").count() == 1


def test_the_report_names_models_at_chance_and_an_interrupted_run(tmp_path, browser):
    chromium()
    audit = make_chance_audit(tmp_path / "chance")
    store = AuditDir(audit)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["jobs"].append({"name": "unfinished", "kind": "variant", "group": "base", "status": "running"})
    manifest["process"] = {**current_process(), "pid": 4_194_305, "process_start": "1"}  # a pid that never runs
    store.write_manifest(manifest)
    args = ["--audit", str(audit), "--runs", str(tmp_path / "no-runs")]
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=args, cwd=tmp_path, env=environment(),
                         log_path=tmp_path / "streamlit.log") as url:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.get_by_text("at or near chance").first.wait_for()
            settle(page)
            no_exception(page)
            shot(page, "overview-chance-warning")
            text = page.locator("body").inner_text()
            assert "rerun the same command to resume" in text and "still running" not in text
            assert "interrupted (4/5)" in text
            page.goto(f"{url}/compare")
            page.get_by_text("Nothing to compare").first.wait_for()
            settle(page)
            no_exception(page)
            shot(page, "compare-at-chance")
            assert page.locator('[data-testid="stVegaLiteChart"]').count() == 1  # the scatter, no one-point line
        finally:
            context.close()
