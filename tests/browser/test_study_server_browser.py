"""The study server as `ddd-audit study serve` starts it, in real headless Chromium: observers meet no
Streamlit chrome (no Deploy button, no main menu, no header) on any page it serves, the home page, a
"Sorry" page of a wrong link, /results and the experiment itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from human_study.design import DesignConfig
from human_study.folder import create_study
from human_study.links import observer_link
from human_study.serve import STUDY_SERVER_OPTIONS, app_script
from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium, serve_streamlit
from tests.study_fixtures import make_study_audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROME = {"Deploy button": '[data-testid="stAppDeployButton"]', "main menu": '[data-testid="stMainMenu"]',
          "toolbar": '[data-testid="stToolbar"]', "header": '[data-testid="stHeader"]'}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    audit = make_study_audit(root / "audit", image_shape=(16, 16, 3))
    made = create_study(audit, "chrome", config=DesignConfig(n_trials=4, n_practice=0, size=64, seed=5),
                        n_observers=1)
    # the server's own settings (human_study.serve), run from a folder without the repository's config.toml
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with serve_streamlit(app_script(), app_args=["--study", str(made.folder)], cwd=root, env=env,
                         log_path=root / "streamlit.log", options=list(STUDY_SERVER_OPTIONS)) as url:
        yield made, url


def visible_chrome(page) -> list[str]:
    """The pieces of Streamlit's chrome an observer can see. The header counts when it shows anything: with
    the top bar hidden, Streamlit keeps an empty, transparent box in its place."""
    seen = [name for name, selector in CHROME.items() if name != "header"
            and any(el.is_visible() for el in page.locator(selector).all())]
    header = page.evaluate("""() => { const h = document.querySelector('[data-testid="stHeader"]');
        if (!h) return null; const cs = getComputedStyle(h);
        return {children: h.children.length, text: h.innerText.trim(), background: cs.backgroundColor,
                visible: cs.display !== 'none' && cs.visibility !== 'hidden'}; }""")
    if header and header["visible"] and (header["children"] or header["text"]
                                         or header["background"] not in ("rgba(0, 0, 0, 0)", "transparent")):
        seen.append("header")
    return seen


def test_no_streamlit_chrome_on_any_page_of_the_study_server(served):
    from playwright.sync_api import sync_playwright

    made, url = served
    pages = {
        "home": (url + "/", "open the personal link"),
        "sorry": (url + "/experiment?study=000000000000&observer=NOPE", "Sorry"),
        "results": (url + "/results", "Admin token"),
        "experiment": (observer_link(url, made.study_id, made.observer_codes[0]), None),
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.set_default_timeout(30_000)
            for name, (link, text) in pages.items():
                page.goto(link)
                page.wait_for_selector('[data-testid="stApp"]')
                if text:
                    page.get_by_text(text, exact=False).first.wait_for()
                else:
                    page.wait_for_timeout(2000)
                page.screenshot(path=str(SHOTS / f"study-server-{name}.png"))
                assert visible_chrome(page) == [], name
        finally:
            browser.close()
