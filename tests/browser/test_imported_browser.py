"""Browser test of an imported audit with human observers: the Overview shows humans beside the models,
and every page opens without an exception although the audit has no pixels, epochs or depths."""

from __future__ import annotations

import pytest

from tests.browser.streamlit_server import chromium_page, serve_streamlit
from tests.browser.test_app_browser import ROOT, _no_exception, _screenshot, _settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def imported_url(tmp_path_factory):
    from audit import load
    from audit.curation.importers import read_model_vs_human, write_imported_audit
    from audit.report import build_report
    from tests.browser.streamlit_server import chromium
    from tests.test_importers import write_mvh_folder

    chromium()
    pytest.importorskip("playwright.sync_api")
    base = tmp_path_factory.mktemp("imported")
    out = write_imported_audit(read_model_vs_human(write_mvh_folder(base / "raw", seed=5)), base / "audit")
    build_report(load(out))
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--audit", str(out)], cwd=ROOT, log_path=base / "log") as url:
        yield url


@pytest.fixture(scope="module")
def page(imported_url):
    with chromium_page() as p:
        yield p


def test_overview_shows_humans_beside_the_models(page, imported_url):
    page.goto(imported_url)
    page.get_by_role("heading", name="Overview", exact=True).first.wait_for(state="visible")
    _settle(page)
    for text in ("Humans beside the models", "Humans on trivial images", "Each human"):
        assert page.get_by_text(text, exact=False).first.is_visible(), text
    # the κ table by group of makers and the split per condition (data grids draw on a canvas)
    section = page.locator('[data-testid="stDataFrame"]')
    assert section.count() >= 4
    _no_exception(page)
    _screenshot(page, "imported-overview")


@pytest.mark.parametrize("slug", ["consistency", "dynamics", "classes", "images", "compare"])
def test_every_page_opens(page, imported_url, slug):
    page.goto(f"{imported_url}/{slug}")
    _settle(page)
    _no_exception(page)
    if slug == "images":  # imported without --images: the grid says why there are no pictures
        assert page.get_by_text("The pixels are not available", exact=False).first.is_visible()
