"""The README's screenshot of the Study results page (docs/figures/study-results.png).

Builds a study from a small synthetic audit, lets nine simulated observers answer it with
meding2022 §3.4's accuracies, serves the app for the study on 127.0.0.1, enters the admin token
in headless Chromium and saves the page. Run from the repository root:

    python scripts/screenshot_study_results.py [OUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from human_study.design import DesignConfig  # noqa: E402
from human_study.folder import create_study, open_study_dir  # noqa: E402
from tests.browser.streamlit_server import chromium_page, serve_streamlit  # noqa: E402
from tests.study_fixtures import answer_like_the_paper, make_study_audit  # noqa: E402

OUT = ROOT / "docs" / "figures" / "study-results.png"


def main(out: Path = OUT) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        audit = make_study_audit(Path(tmp) / "audit", image_shape=(24, 24, 3))
        made = create_study(audit, "pilot", config=DesignConfig(n_trials=149, n_practice=0, size=64, seed=3),
                            n_observers=9)
        store, study = open_study_dir(made.folder)
        with store:
            answer_like_the_paper(store, study, made.observer_codes)
        print(f"study {made.study_id}: 9 observers answered 149 trials each", flush=True)
        with serve_streamlit(ROOT / "audit_app" / "app.py", app_args=["--study", str(made.folder)], cwd=ROOT,
                             log_path=Path(tmp) / "streamlit.log") as url, chromium_page(1100, 2600) as page:
            page.goto(f"{url}/results")
            page.get_by_test_id("stTextInputField").fill(made.admin_token)
            page.keyboard.press("Enter")
            page.get_by_text("mean accuracy 81.36%").wait_for()
            page.locator('[data-testid="stImage"] img').nth(3).wait_for()  # the four figures
            page.wait_for_timeout(1000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
