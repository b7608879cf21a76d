"""Browser test of the report viewer: a real `streamlit run` server, every page in headless Chromium.

Asserts that each page's key elements are visible and that no exception box is
shown, and saves a screenshot of each page to test-artifacts/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.streamlit_server import chromium, chromium_page, serve_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = (  # url path, title, texts that must be visible, minimum number of charts
    ("", "Overview", ["Trivial", "Inconclusive", "Impossible", "Tolerance t"], 2),
    ("consistency", "Consistency", ["Model order", "Within and between groups of variants"], 2),
    ("dynamics", "Dynamics", ["Decision maps", "Swaps per epoch", "TP-agreement per epoch"], 6),
    ("classes", "Classes", ["Easiest classes", "Hardest classes"], 2),
    ("images", "Images", ["Sort by", "Export this selection", "Inspect"], 0),
    ("compare", "Compare", ["Pearson r of Accessibility", "Groups"], 2),
)


@pytest.fixture(scope="module")
def digits_epochs_audit(tmp_path_factory) -> Path:
    """The digits audit over 6 epochs: its groups' ensembles match in accuracy at several epochs, so the
    Compare page draws its accuracy-matched curve (2 epochs of today's recipe jump past every match)."""
    from audit.report import build_report
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.store import load

    out = tmp_path_factory.mktemp("audits") / "digits_epochs"
    run_audit(plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=6, device="cpu")), out)
    build_report(load(out))
    return out


@pytest.fixture(scope="module")
def app_url(digits_epochs_audit, tmp_path_factory):
    chromium()  # skips, with the reason, where there is no Chromium
    pytest.importorskip("playwright.sync_api")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--audit", str(digits_epochs_audit)], cwd=ROOT,
                         log_path=log) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page(app_url):
    with chromium_page() as page:
        yield page


def _settle(page) -> None:
    """Wait until the script run is over (the running indicator is gone) and the charts are drawn."""
    page.wait_for_selector('[data-testid="stMain"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    page.wait_for_timeout(800)


def _screenshot(page, name: str) -> None:
    """Save the whole page: Streamlit scrolls inside its main block, so grow the window to fit it first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 8000)})
    page.wait_for_timeout(1200)  # charts re-fit to the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def _no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


@pytest.mark.parametrize(("slug", "title", "visible", "n_charts"), PAGES, ids=[p[1].lower() for p in PAGES])
def test_page_renders(browser_page, app_url, slug, title, visible, n_charts):
    page = browser_page
    page.goto(f"{app_url}/{slug}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(state="visible")
    _settle(page)
    for text in visible:
        assert page.get_by_text(text, exact=False).first.is_visible(), f"{text!r} is not visible on {slug}"
    drawn = "[data-testid=\"stVegaLiteChart\"] canvas, [data-testid=\"stVegaLiteChart\"] svg.marks"
    page.wait_for_function(f"() => document.querySelectorAll('{drawn}').length >= {n_charts}")
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_role("link", name="Compare").is_visible()
    _no_exception(page)
    _screenshot(page, f"report-{title.lower()}")


def test_chart_tooltip_and_downloads(browser_page, app_url):
    """Hovering a bar shows its values; each chart offers PNG (toolbar) and SVG (or its spec) below it."""
    page = browser_page
    page.goto(app_url)
    page.get_by_role("heading", name="Overview", exact=True).first.wait_for(state="visible")
    _settle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first  # the n_correct histogram, below the headline
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    tooltip = page.locator("#vg-tooltip-element")
    points = [(fx, fy) for fy in (0.8, 0.5) for fx in (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8)]
    for fx, fy in points:  # the bars sit where the images are: most are trivial
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_timeout(300)
        if tooltip.count() and tooltip.is_visible():
            break
    assert tooltip.is_visible(), "no tooltip on hover"
    assert "n_correct" in tooltip.inner_text()
    toolbar = chart.locator("xpath=..")  # the chart's element, with Streamlit's toolbar
    assert toolbar.get_by_role("button", name="Download as PNG").is_visible()
    saves = page.get_by_role("button", name="SVG").or_(page.get_by_role("button", name="Vega-Lite spec"))
    assert saves.count() >= 2  # one per chart
    page.screenshot(path=str(SHOTS / "report-chart-hover.png"))


def test_inspect_an_image(browser_page, app_url):
    page = browser_page
    page.goto(f"{app_url}/images")
    page.get_by_role("heading", name="Images", exact=True).first.wait_for(state="visible")
    _settle(page)
    page.get_by_role("button", name="Inspect").first.click()
    dialog = page.locator('[role="dialog"]')
    dialog.wait_for(state="visible")
    dialog.get_by_text("models are right").wait_for(state="visible")
    dialog.get_by_text("majority prediction").wait_for(state="visible")
    _settle(page)
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "report-images-inspect.png"))


def test_export_this_selection(browser_page, app_url):
    """The export control opens on the CSV download and the command that writes an ImageFolder."""
    page = browser_page
    page.goto(f"{app_url}/images")
    page.get_by_role("heading", name="Images", exact=True).first.wait_for(state="visible")
    _settle(page)
    page.get_by_role("button", name="Export this selection").click()
    page.get_by_role("button", name="Download these images (CSV)").wait_for(state="visible")
    code = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"]').first
    code.wait_for(state="visible")
    assert code.inner_text().startswith("ddd-audit export ") and "--format imagefolder" in code.inner_text()
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "report-images-export.png"))


def test_study_link_hides_the_report(browser_page, app_url):
    """The report app does not run studies (an app started with --study does): a study link gets a
    note, with neither the report nor the experiment."""
    page = browser_page
    for path in ("/experiment?study=demo&observer=X1", "/?study=demo&observer=X1"):
        page.goto(f"{app_url}{path}")
        page.wait_for_selector('[data-testid="stMain"]')
        page.get_by_text("this app was started to show an audit's report").wait_for()
        _settle(page)
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert page.get_by_role("heading", name="Overview", exact=True).count() == 0
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator(".st-key-xp_consent").count() == 0
    page.screenshot(path=str(SHOTS / "report-study-link.png"))
