"""The app started for studies (`-- --study DIR`) shows observers the experiment and nothing of
the report, whatever they do to their link; the report app does not run study links; observers
never see a path or a database address. Through Streamlit's AppTest on the real app.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit_app import _data as app_data
from audit_app._study import study_roots
from human_study import experiment as xp
from human_study.design import DesignConfig
from human_study.folder import STUDY_DIRS_ENV, create_study
from tests.study_fixtures import make_study_audit

ROOT = Path(__file__).resolve().parents[1]
REPORT_WORDS = ("trivial", "impossible", "inconclusive", "overview", "n_correct", "accuracy")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("leaks") / "audit")
    return create_study(
        audit, "pilot", config=DesignConfig(n_trials=6, n_practice=1, size=16, seed=5), n_observers=2
    )


@pytest.fixture(autouse=True)
def no_study_dirs(monkeypatch):
    monkeypatch.delenv(STUDY_DIRS_ENV, raising=False)


def serve(monkeypatch, *app_args: str, query: dict | None = None) -> AppTest:
    """Run app.py as `streamlit run app.py -- APP_ARGS`, opened at `?QUERY`."""
    monkeypatch.setattr(sys, "argv", ["app.py", *app_args])
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title", "subheader")
             for e in at.get(kind)]
    parts += [m.label for m in at.metric] + [w.label for w in at.text_input]
    parts += [str(o) for s in at.selectbox for o in s.options]
    return "\n".join(str(p) for p in parts)


def no_report(at: AppTest, made) -> None:
    text = shown(at).lower()
    for word in REPORT_WORDS:
        assert word not in text
    assert not at.metric and not at.get("vega_lite_chart") and not at.dataframe
    assert not at.selectbox  # no audit picker
    assert "audit_path" not in at.session_state
    assert str(made.folder) not in shown(at)


def test_parse_app_args_reads_the_study_folders():
    args = app_data.parse_app_args(["app.py", "--", "--study", "a", "--study=b", "--audit", "x"])
    assert args.study == ("a", "b") and args.serving and args.audit == "x"
    assert not app_data.parse_app_args(["app.py", "--audit", "x"]).serving
    assert not app_data.parse_app_args(["app.py", "--study"]).serving  # a flag without a value


@pytest.mark.parametrize("extra", [[], ["--audit"]], ids=["study-only", "with-audit"])
def test_serving_app_without_the_study_link_shows_no_report(made, monkeypatch, extra):
    args = ["--study", str(made.folder)] + (extra and ["--audit", str(made.folder.parent.parent)])
    at = serve(monkeypatch, *args)  # the observer's link with ?study=...&observer=... removed
    no_report(at, made)
    assert "open the personal link" in shown(at)
    for page in ("overview", "consistency", "images", "compare"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"{page}.py")  # not registered: no URL reaches the report
    at = serve(monkeypatch, *args, query={"observer": made.observer_codes[0]})  # the code alone
    no_report(at, made)


def test_serving_app_runs_the_observers_link(made, monkeypatch):
    query = {"study": made.study_id, "observer": made.observer_codes[0]}
    at = serve(monkeypatch, "--study", str(made.folder), query=query)
    assert [b.key for b in at.button] == ["xp_consent"]
    assert "Welcome" in shown(at)
    no_report(at, made)


def test_serving_app_finds_only_the_studies_it_serves(made, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv(STUDY_DIRS_ENV, str(made.folder))  # ignored: --study decides
    query = {"study": made.study_id, "observer": made.observer_codes[0]}
    at = serve(monkeypatch, "--study", str(other), "--runs", str(made.folder.parent), query=query)
    assert at.error and "no study with this link" in at.error[0].value
    assert study_roots(None, argv=["app.py", "--study", str(other)]) == [other.resolve()]


def test_serving_app_shows_results_only_with_the_token(made, monkeypatch):
    at = serve(monkeypatch, "--study", str(made.folder))
    at.switch_page("study_results.py").run()
    assert not at.exception and not at.dataframe and not at.selectbox
    assert [t.key for t in at.text_input] == ["results_token"]
    at.text_input(key="results_token").input("wrong").run()
    assert at.error and not at.dataframe and made.study_id not in shown(at)
    at.text_input(key="results_token").input(made.admin_token).run()
    assert not at.exception and not at.error and at.dataframe


def test_report_app_does_not_run_study_links(made, monkeypatch):
    query = {"study": made.study_id, "observer": made.observer_codes[0]}
    at = serve(monkeypatch, "--audit", str(made.folder.parent.parent), query=query)
    assert "--study" in at.info[0].value and not at.button  # a note, not the experiment
    assert "Overview" not in [t.value for t in at.title] and not at.metric


def test_observers_never_see_where_a_broken_study_lives(made, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    shutil.copytree(made.folder, broken)
    (broken / "study.db").unlink()
    query = {"study": made.study_id, "observer": made.observer_codes[0]}
    at = serve(monkeypatch, "--study", str(broken), query=query)
    assert at.error and xp.STUDY_UNAVAILABLE in at.error[0].value
    assert str(tmp_path) not in shown(at) and "study.db" not in shown(at)
