"""Browser test of the charts' sizes on a real 4-model audit: every page drawn in headless Chromium, and on
the Deeper measures page every matrix measured as drawn.

Each page is saved to test-artifacts/screenshots/charts-<page>.png. On Deeper measures, each matrix's cells
(the rect marks of its SVG) are at least 20 px high and wide, one row per model or score; every chart's
title lies inside its own chart, and the stability axis counts whole models up to the audit's 4.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.streamlit_server import chromium, chromium_page, serve_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = (("", "Overview"), ("consistency", "Consistency"), ("dynamics", "Dynamics"), ("classes", "Classes"),
         ("deeper", "Deeper measures"), ("images", "Images"), ("compare", "Compare"), ("scored", "Scored models"))
#: the matrices of the Deeper measures page, by the start of their title
MATRIX_TITLES = ("RSA between", "CKA between", "Spearman's ρ between", "Spearman's ρ of prediction depth")

#: each drawn chart: its title, its box, and the boxes of its rect marks and the texts of its axis labels
CHARTS_JS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(chart => {
    const box = r => { const b = r.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
    const title = chart.querySelector('g.role-title text');
    return {
        title: title ? title.textContent : '',
        titleBox: title ? box(title) : null,
        box: box(chart),
        rects: [...chart.querySelectorAll('g.mark-rect.role-mark path')].map(box),
        labels: [...chart.querySelectorAll('g.role-axis-label text')].map(t => t.textContent),
        inkBottom: Math.max(...[...chart.querySelectorAll('text, path')].map(e => e.getBoundingClientRect().bottom)),
    };
})"""


@pytest.fixture(scope="module")
def app_url(digits_audit, tmp_path_factory):
    chromium()  # skips, with the reason, where there is no Chromium
    pytest.importorskip("playwright.sync_api")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--audit", str(digits_audit)], cwd=ROOT,
                         log_path=log) as url:
        yield url


def _open(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(state="visible")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(800)


def _screenshot(page, name: str) -> None:
    """The whole page: grow the window to the main block's height first (Streamlit scrolls inside it)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 8000)})
    page.wait_for_timeout(1200)  # charts re-fit to the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_every_page_draws_and_deeper_matrices_have_cells_of_20_px(app_url, digits_audit):
    from audit.store import load

    result = load(digits_audit)
    n_models, n_images = len(result.model_names), result.n_images
    assert n_models == 4
    with chromium_page() as page:
        for slug, title in PAGES:
            _open(page, f"{app_url}/{slug}", title)
            assert page.locator('[data-testid="stException"]').count() == 0, f"an exception on {title}"
            _screenshot(page, f"charts-{slug or 'overview'}")
            if slug == "deeper":
                charts = page.evaluate(CHARTS_JS)
        page.set_viewport_size({"width": 1440, "height": 1000})
    matrices = [c for c in charts if c["title"].startswith(MATRIX_TITLES)]
    titles = [c["title"] for c in matrices]
    assert any(t.startswith(f"RSA between {n_models} models") for t in titles), titles
    assert any(t.startswith("Spearman's ρ between") for t in titles), titles
    for chart in matrices:
        rects = chart["rects"]
        rows = {round(top) for _, top, _, _ in rects}
        heights = [h for _, _, _, h in rects]
        widths = [w for _, _, w, _ in rects]
        assert len(rows) >= min(n_models, 4), f"{chart['title']}: {len(rows)} rows drawn"
        assert min(heights) >= 20 and min(widths) >= 20, f"{chart['title']}: cells of {min(heights):.1f} px"
        assert max(heights) - min(heights) < 1 and abs(min(widths) - min(heights)) < 1  # square cells
    for above, chart in zip(charts, charts[1:], strict=False):  # a title is not drawn over by the chart above
        if chart["titleBox"] and chart["box"][0] == above["box"][0]:
            assert chart["titleBox"][1] >= above["inkBottom"], f"{chart['title']!r} lies under {above['title']!r}"
    stability = next(c for c in charts if "split of subsets" in c["title"])
    counts = [int(t) for t in stability["labels"] if re.fullmatch(r"\d+", t)]
    assert counts and max(counts) == n_models and all(t.endswith("%") or t.isdigit() for t in stability["labels"])
    cartography = next(c for c in charts if c["title"].startswith("Cartography"))
    assert cartography["title"].endswith(f"all {n_images:,} images")
