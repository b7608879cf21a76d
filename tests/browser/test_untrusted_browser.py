"""A received audit with hostile names and a hostile manifest, opened in the real app in headless Chromium.

The audit is a real run on an ImageFolder tree whose class folders are named like HTML and spreadsheet
payloads; it is then copied as someone else might send it: no seal of this user, the dataset root `/`
and the first images pointing at etc/passwd and /etc/hostname. Every report page must open with no
dialog, show no file outside the images (no text of those files, every thumbnail the grey "not
available" square) and request nothing from any host but the app's server; so must the experiment.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.browser.streamlit_server import CHROMIUM_ARGS, chromium, serve_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_CLASSES = ["<img src=x onerror=alert(1)>", '=HYPERLINK("evil.example","x")', "<svg onload=alert(2)>"]
PAGES = ("", "consistency", "dynamics", "classes", "deeper", "images", "compare", "scored")


@pytest.fixture(scope="module")
def received(tmp_path_factory) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    import audit
    from audit.report import build_report
    from audit.running.engine import AuditConfig, plan_audit, run_audit

    chromium()  # skips, with the reason, where there is no Chromium
    pytest.importorskip("playwright.sync_api")
    base = tmp_path_factory.mktemp("untrusted-browser")
    digits = load_digits()
    for c, name in enumerate(HOSTILE_CLASSES):
        idx = np.flatnonzero(digits.target == c)
        for split, ids in (("val", idx[:8]), ("train", idx[8:40])):
            folder = base / "data" / split / name
            folder.mkdir(parents=True)
            for i in ids:
                Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(folder / f"img_{i}.png")
    made = base / "made"
    run_audit(plan_audit(AuditConfig(dataset=f"imagefolder:{base / 'data'}", variants="minimal", epochs=2,
                                     device="cpu", image_size=8, depth="none", learnability=False, rsa_images=0)),
              made)
    build_report(audit.load(made), n_bootstrap=0)
    out = base / "received"
    shutil.copytree(made, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["dataset"].pop("root_seal")
    manifest["dataset"]["root"] = manifest["dataset"]["origin"] = "/"
    manifest["notes"] = ["<img src=x onerror=alert(3)>", "[click](javascript:alert(4))"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    images = pd.read_parquet(out / "images.parquet")
    images.loc[:1, "source"] = ["etc/passwd", "/etc/hostname"]
    images.to_parquet(out / "images.parquet", index=False)
    return out


def _secrets() -> list[str]:
    lines = [Path("/etc/hostname").read_text().strip()]
    lines += [line for line in Path("/etc/passwd").read_text().splitlines() if line.startswith("root:")]
    return [s for s in lines if len(s) >= 4]


def _watch(page, url: str) -> tuple[list, list]:
    outside, dialogs = [], []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:",
                                                                                 "about:")) else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return outside, dialogs


def _settle(page) -> None:
    page.wait_for_selector('[data-testid="stMain"]')
    page.wait_for_timeout(800)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
    page.wait_for_timeout(800)


def test_hostile_audit_opens_without_dialogs_leaks_or_outside_requests(received, tmp_path):
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--audit", str(received)], cwd=ROOT, env=env,
                         log_path=tmp_path / "server.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            outside, dialogs = _watch(page, url)
            for path in PAGES:
                page.goto(f"{url}/{path}")
                _settle(page)
                text = page.locator("body").inner_text()
                for secret in _secrets():
                    assert secret not in text, f"/{path} shows a line of a file outside the images"
                assert page.locator('[data-testid="stException"]').count() == 0, f"/{path} raised"
                if path == "images":
                    assert "--images-root" in text  # the pixels note says how to show them
            assert not dialogs, f"dialogs opened: {dialogs}"
            assert not outside, f"requests to other hosts: {sorted(set(outside))}"
        finally:
            browser.close()


def test_experiment_requests_nothing_from_other_hosts(tmp_path):
    from playwright.sync_api import sync_playwright

    from human_study.design import DesignConfig
    from human_study.folder import STUDY_DIRS_ENV, create_study
    from human_study.links import observer_link
    from tests.study_fixtures import make_study_audit

    chromium()
    pytest.importorskip("playwright.sync_api")
    made = create_study(make_study_audit(tmp_path / "audit", image_shape=(24, 24, 3)), "offline",
                        config=DesignConfig(n_trials=3, n_practice=0, size=64, seed=5), n_observers=1)
    env = {k: v for k, v in os.environ.items() if k != STUDY_DIRS_ENV}
    with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--study", str(made.folder)], cwd=ROOT,
                         env={**env, "PYTHONUNBUFFERED": "1"}, log_path=tmp_path / "server.log") as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.set_default_timeout(60_000)
            outside, dialogs = _watch(page, url)
            page.goto(observer_link(url, made.study_id, made.observer_codes[0]))
            agree = page.locator(".st-key-xp_consent button")
            agree.wait_for(state="visible")
            agree.click()
            start = page.locator(".st-key-xp_start button")
            start.wait_for(state="visible")
            start.click()
            page.wait_for_function("() => !!document.documentElement.dataset.xpReady")
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(1500)
            _settle(page)
            assert not dialogs, f"dialogs opened: {dialogs}"
            assert not outside, f"requests to other hosts: {sorted(set(outside))}"
        finally:
            browser.close()
