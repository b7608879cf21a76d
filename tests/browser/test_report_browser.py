"""In headless Chromium: the Overview's headline is in the first screen at 1400×900, and the one-file HTML
report opens with the network cut off and shows every figure (screenshots checked for drawn pixels).
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import audit
from audit.plots import paper
from audit.report import build_report
from audit.report.figures import current_report
from audit.report.html import write_html_report
from audit.report.text import headline
from audit.store import REPORT_FIGURES
from audit.synthetic import make_synthetic_audit
from tests.browser.streamlit_server import chromium, chromium_page, serve_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
FIRST_SCREEN = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    chromium()  # skips, with the reason, where there is no Chromium
    pytest.importorskip("playwright.sync_api")
    path = make_synthetic_audit(tmp_path_factory.mktemp("report-browser") / "audit", n_images=300, n_models=6,
                                n_epochs=4, n_pretrained=1, random_state=11)
    build_report(audit.load(path), n_bootstrap=0)
    return path


def _drawn(png: bytes) -> tuple[float, int]:
    """Spread of grey levels and the number of distinct colours in a screenshot (both ~0 when blank)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB"))
    return float(rgb.std()), len(np.unique(rgb.reshape(-1, 3), axis=0))


def test_overview_headline_is_in_the_first_screen(reported, tmp_path):
    line = headline(audit.load(reported).summary())
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--audit", str(reported)], cwd=ROOT,
                         log_path=tmp_path / "server.log") as url, chromium_page(**FIRST_SCREEN) as page:
        page.goto(url)
        box = page.locator(".st-key-overview_headline")
        box.wait_for(state="visible")
        page.wait_for_selector(".vega-embed")  # the histogram: the page has run past the headline
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                               timeout=60_000)
        page.wait_for_timeout(800)
        assert box.inner_text().splitlines()[0].strip() == line
        where = box.bounding_box()
        assert where is not None and where["y"] >= 0 and where["y"] + where["height"] <= FIRST_SCREEN["height"]
        # it comes before the histogram and the models
        models = page.get_by_text("Models", exact=True).first.bounding_box()
        assert models is None or models["y"] > where["y"] + where["height"]
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "overview-headline.png"))


def test_html_report_opens_offline_and_shows_every_figure(reported):
    page_path = write_html_report(audit.load(reported))
    names = list(paper.paper_figures(current_report(audit.load(reported))))
    names += [Path(n).stem for n in audit.load(reported).summary()["files"]["figures"]
              if n not in REPORT_FIGURES.values()]  # the deeper measures' figures follow the paper's
    fetched = []
    with chromium_page(width=1200, height=900) as page:
        page.context.set_offline(True)

        def refuse(route):
            fetched.append(route.request.url)
            route.abort()

        page.context.route("http*://**/*", refuse)
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        shown = page.evaluate(
            "() => [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0 && i.naturalHeight > 0])")
        assert shown == [[name, True] for name in names]
        assert fetched == []
        assert page.locator("#headline").inner_text() == headline(audit.load(reported).summary())
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "report-html.png"), full_page=True)
        for name in names:
            figure = page.locator(f"#fig-{name} img")
            figure.scroll_into_view_if_needed()
            spread, colours = _drawn(figure.screenshot())
            assert spread > 10 and colours > 20, f"{name} looks blank: grey spread {spread:.1f}, {colours} colours"
