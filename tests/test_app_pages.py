"""AppTest tests of every report page and of the router, on a small real audit and on bad input.

The real audit is the session's `digits_audit` (trained here); the numbers on the
pages are checked against the store (AuditResult), scikit-learn and hand counts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from audit.report import build_report
from audit.store import AuditDir, load
from audit.synthetic import make_synthetic_audit

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("overview", "consistency", "dynamics", "classes", "images", "compare")


def open_page(audit, page: str, *, tolerance: int | None = None) -> AppTest:
    """Run the app on `audit` and switch to `page`."""
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(audit)
    if tolerance is not None:
        at.session_state["tolerance"] = tolerance
    at.run()
    if page != "overview":
        at.switch_page(f"{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    """Every Altair chart on the page as {"spec": str, "data": [DataFrame, ...]}."""
    out = []
    for el in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in el.proto.datasets]
        spec = json.dumps(json.loads(el.proto.spec), ensure_ascii=False)  # κ, not \u03ba
        out.append({"spec": spec, "data": frames})
    return out


def chart_with(at: AppTest, text: str) -> dict:
    found = [c for c in charts(at) if text in c["spec"]]
    assert found, f"no chart mentions {text!r}"
    return found[0]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def tables(at: AppTest, column: str) -> list:
    """The page's dataframes that have `column`, in page order (plain dataframes carry no key)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table has a column {column!r}"
    return found


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(autouse=True)
def _no_runs_folder(monkeypatch, tmp_path):
    """The app reads `--runs` from sys.argv: point it at an empty folder, not this checkout's runs/."""
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(tmp_path / "no-runs")])


# --------------------------------------------------------------------------- pages on a real audit
def test_overview_shows_models_and_split(digits_audit):
    result = load(digits_audit)
    correct = result.correct()
    m = result.n_models
    n_right = correct.sum(axis=1)
    at = open_page(digits_audit, "overview")
    shown = metrics(at)
    assert shown["Images"] == f"{result.n_images:,}"
    assert shown["Models"] == str(m)
    assert shown["Status"] == "complete"
    assert shown["Trivial"] == f"{100 * np.mean(n_right >= m - 1):.1f}%"
    assert shown["Impossible"] == f"{100 * np.mean(n_right <= 1):.1f}%"
    assert len(at.get("download_button")) >= 2  # SVG (or Vega-Lite spec) under each chart
    hist = chart_with(at, "n_correct histogram")
    bars = next(d for d in hist["data"] if "category" in d.columns)
    assert list(bars["images"]) == list(np.bincount(n_right, minlength=m + 1))
    table = tables(at, "accuracy_pct")[0]
    np.testing.assert_allclose(table["accuracy_pct"].to_numpy(), 100 * correct.mean(axis=0))
    # the strict definition: trivial = every model right
    at.slider(key="tolerance").set_value(0).run()
    assert metrics(at)["Trivial"] == f"{100 * np.mean(n_right == m):.1f}%"
    assert "Tolerance 0 of" in texts(at)


def test_consistency_is_cohen_kappa(digits_audit):
    from sklearn.metrics import cohen_kappa_score

    result = load(digits_audit)
    correct = result.correct()
    m = result.n_models
    pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
    mean_all = np.mean([cohen_kappa_score(correct[:, i], correct[:, j]) for i, j in pairs])
    at = open_page(digits_audit, "consistency")
    heat = chart_with(at, "All images: mean")
    assert f"mean κ {mean_all:.3f}" in heat["spec"]
    cells = heat["data"][0]
    assert len(cells) == m * (m - 1)
    a, b = result.model_names[0], result.model_names[1]
    cell = cells[(cells["model_a"] == a) & (cells["model_b"] == b)]["kappa"].iloc[0]
    assert cell == pytest.approx(cohen_kappa_score(correct[:, 0], correct[:, 1]))
    chart_with(at, "Inconclusive images: mean")
    assert tables(at, "within groups")[0].shape[0] == 2
    at.selectbox(key="consistency_order").set_value("clustered").run()
    assert not at.exception
    # at another tolerance the inconclusive matrix is recomputed from the decisions
    n_right = correct.sum(axis=1)
    strict = (n_right > 0) & (n_right < m)
    at = open_page(digits_audit, "consistency", tolerance=0)
    assert f"({strict.sum():,} images, " in chart_with(at, "Inconclusive images: mean")["spec"]


def test_dynamics_maps_swaps_and_tp_agreement(digits_audit):
    result = load(digits_audit)
    at = open_page(digits_audit, "dynamics")
    models = at.selectbox(key="dynamics_model").options
    assert models == result.model_names  # every digits variant records several epochs
    base = result.decision_array("base", "correct")
    swaps = chart_with(at, "decisions that swap")["data"][0]
    first = swaps[(swaps["model"] == "base") & (swaps["epoch_from"] == 0)]["swaps"].iloc[0]
    assert first == np.count_nonzero(base[0] != base[1])
    final = result.correct().sum(axis=1)
    tp = chart_with(at, "observed (bars), null (orange)")["data"][0]
    assert list(tp["observed"]) == list(np.bincount(final, minlength=result.n_models + 1))
    assert tp["null"].sum() == pytest.approx(result.n_images)
    for title in ("One model: base", "All 4 models", "Learned epoch", "Accessibility"):
        chart_with(at, title)
    at.selectbox(key="dynamics_model").set_value(models[1]).run()
    chart_with(at, f"One model: {models[1]}")
    at.select_slider(key="dynamics_epoch").set_value(0).run()
    assert "Epoch 0:" in chart_with(at, "observed (bars)")["spec"]


def test_classes_ranks_easiest_and_hardest(digits_audit):
    result = load(digits_audit)
    correct, labels = result.correct(), result.labels
    by_class = np.array([correct[labels == c].mean() for c in range(result.n_classes)])
    at = open_page(digits_audit, "classes")
    easiest, hardest = tables(at, "mean")[:2]
    assert easiest.iloc[0]["class_name"] == result.class_names[int(np.argmax(by_class))]
    assert hardest.iloc[0]["mean"] == pytest.approx(by_class.min())
    assert len(easiest) == min(10, result.n_classes)
    at.slider(key="classes_k").set_value(3).run()
    assert len(tables(at, "mean")[0]) == 3
    chart_with(at, "Per-class accuracy")


def test_images_filter_sort_and_inspect(digits_audit):
    result = load(digits_audit)
    images = result.images
    m = result.n_models
    at = open_page(digits_audit, "images")
    assert f"**{result.n_images:,}** of" in texts(at)
    at.multiselect(key="images_category").set_value(["inconclusive"]).run()
    inconclusive = images[(images["n_correct"] > 1) & (images["n_correct"] < m - 1)]
    assert f"**{len(inconclusive):,}** of" in texts(at)
    at.selectbox(key="images_sort").set_value("tp_agreement").run()
    at.radio(key="images_order").set_value("highest first").run()
    table = tables(at, "tp_agreement")[0]
    assert table["tp_agreement"].is_monotonic_decreasing
    assert set(table["category"]) == {"inconclusive"}
    assert at.get("download_button")
    first = int(table["image_id"].iloc[0])
    at.button(key=f"images_inspect_{first}").click().run()
    assert not at.exception
    n_right = int(result.correct()[first].sum())
    assert f"**{n_right} of {m} models are right**" in texts(at)
    decisions = tables(at, "confidence")[0]
    assert list(decisions["predicted"]) == [result.class_names[p] for p in result.predicted()[first]]
    chart_with(at, "Its decisions over the epochs")
    at.number_input(key="images_lookup").set_value(5).run()
    assert "#5 · class" in texts(at)


def test_images_deeper_measure_filters(digits_audit):
    images = load(digits_audit).images
    at = open_page(digits_audit, "images")
    at.checkbox(key="images_label_issues").check().run()
    assert not at.exception
    n_flagged = int(images["is_label_issue"].fillna(False).astype(bool).sum())
    assert f"**{n_flagged:,}** of" in texts(at)
    cause = sorted(images["impossible_cause"].dropna().astype(str).unique())[0]
    at.multiselect(key="images_cause").set_value([cause]).run()
    both = ((images["impossible_cause"].astype(str) == cause) & images["is_label_issue"].fillna(False).astype(bool))
    assert f"**{int(both.sum()):,}** of" in texts(at)


def test_images_table_has_readable_headers_numeric_columns_and_blank_gaps(digits_audit):
    images = load(digits_audit).images
    at = open_page(digits_audit, "images")
    (table,) = [d for d in at.dataframe if d.key == "images_table"]
    config = json.loads(table.proto.columns)
    shown = list(table.proto.column_order)
    assert shown[:4] == ["image_id", "class_name", "label", "category"]
    labels = {c: config[c]["label"] for c in shown}
    assert labels["class_name"] == "class" and labels["n_correct"] == "models correct"
    assert labels["mean_true_prob"] == "mean true-class prob." and labels["learned_epoch"] == "learned at epoch"
    assert not [t for t in labels.values() if "_" in t]  # no raw column name is left as a header
    assert all(config[c]["help"].startswith(f"`{c}` in the CSV") for c in shown)  # the file's name is one hover away
    # the headers are labels only: the data stay numbers, so the browser sorts them as numbers
    value = table.value
    numbers = [c for c in shown if c in value and pd.api.types.is_numeric_dtype(value[c])
               and not pd.api.types.is_bool_dtype(value[c])]
    assert {"image_id", "n_correct", "tp_agreement", "learned_epoch"} <= set(numbers)
    assert all(config[c]["type_config"]["type"] == "number" for c in numbers)
    assert config["tp_agreement"]["type_config"]["format"] == "%.3f"
    assert value["learned_epoch"].isna().sum() == images["learned_epoch"].isna().sum() > 0  # gaps stay NaN ...
    assert table.proto.HasField("placeholder") and table.proto.placeholder == ""  # ... and show as blank cells
    sort = at.selectbox(key="images_sort")
    assert "models correct" in sort.options and "n_correct" not in sort.options
    at.selectbox(key="images_sort").set_value("learned_epoch").run()
    assert at.selectbox(key="images_sort").value == "learned_epoch"  # the value is still the column


def test_compare_split_half_and_groups(digits_audit):
    from scipy.stats import pearsonr

    from audit.metrics.agreement import accessibility

    result = load(digits_audit)
    names = result.model_names
    a, b = names[0::2], names[1::2]
    r = pearsonr(accessibility(result.correct_by_epoch(a)), accessibility(result.correct_by_epoch(b))).statistic
    at = open_page(digits_audit, "compare")
    assert metrics(at)["Pearson r of Accessibility"] == f"{r:.3f}"
    assert metrics(at)["Images"] == f"{result.n_images:,}"
    chart_with(at, "Accessibility of every image (area = images)")
    at.radio(key="compare_mode").set_value("by variant group").run()
    at.selectbox(key="compare_group").set_value("init_seed").run()
    assert "Group A: 2 models · Group B: 2 models" in texts(at)
    at.radio(key="compare_mode").set_value("custom").run()
    at.multiselect(key="compare_a").set_value([names[0]]).run()
    at.multiselect(key="compare_b").set_value([names[0], names[1]]).run()
    assert "The groups share" in texts(at)
    assert not at.exception


def test_tolerance_carries_across_pages(digits_audit):
    at = open_page(digits_audit, "overview")
    at.slider(key="tolerance").set_value(0).run()
    at.switch_page("images.py").run()
    assert "At tolerance 0" in at.multiselect(key="images_category").help
    at.switch_page("overview.py").run()
    assert at.slider(key="tolerance").value == 0


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_audits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_audits")
    one = make_synthetic_audit(root / "one_model", n_images=120, n_models=1, n_epochs=3)
    build_report(load(one), figures=False)
    flat = make_synthetic_audit(root / "epoch_0_only", n_images=120, n_models=4, n_epochs=1)
    build_report(load(flat), figures=False)
    make_synthetic_audit(root / "running", n_images=120, n_models=3, n_epochs=3, n_unfinished=2)
    empty = make_synthetic_audit(root / "nothing_finished", n_images=50, n_models=2, n_epochs=2, n_unfinished=1)
    for model in load(empty).model_names:
        AuditDir(empty).remove_job(model)
    (empty / "models.parquet").unlink()
    (root / "not_started").mkdir()
    shutil.copy(flat / "manifest.json", root / "not_started" / "manifest.json")
    (root / "not_an_audit").mkdir()
    (root / "not_an_audit" / "notes.txt").write_text("hello")
    return root


EXPECTED = {  # case -> (message on every page, {page: extra message})
    "does_not_exist": ("does not exist", {}),
    "not_an_audit": ("is not an audit directory", {}),
    "not_started": ("has not started writing yet", {}),
    "one_model": ("120 images, 1 model", {
        "overview": "the only one possible with 1 model",
        "consistency": "one finished model",
        "dynamics": "Colours: category at tolerance 0",
        "classes": "Category at tolerance 0",
        "images": "/1 right]",
        "compare": "needs at least two models",
    }),
    "epoch_0_only": ("120 images, 4 models", {
        "overview": "no model has more than one recorded epoch",
        "consistency": "all images: mean κ =",
        "dynamics": "more than one recorded epoch",
        "classes": "Category at tolerance 1",
        "images": "/4 right]",
        "compare": "needs at least two models",
    }),
    "running": ("still running: 3 of 5 jobs", {}),
    "nothing_finished": ("No model has finished yet", {}),
}


@pytest.mark.parametrize("case", list(EXPECTED))
@pytest.mark.parametrize("page", PAGES)
def test_bad_input_gives_a_message(bad_audits, case, page):
    at = open_page(bad_audits / case, page)
    everywhere, extra = EXPECTED[case]
    assert everywhere and all(extra.values())  # "" would be in any page
    shown = texts(at)
    assert everywhere in shown
    if page in extra:
        assert extra[page] in shown
    if case in ("does_not_exist", "not_an_audit", "not_started"):
        assert "make audit" in shown
    if case in ("one_model", "epoch_0_only", "running"):
        assert at.title and at.title[0].value.lower() == page  # the page itself still renders


def test_running_audit_shows_the_finished_models(bad_audits):
    at = open_page(bad_audits / "running", "overview")
    assert metrics(at)["Models"] == "3"
    assert metrics(at)["Status"] == "running (3/5)"
    assert "has no report yet" in texts(at)
    jobs = tables(at, "status")[0]
    assert sorted(jobs["status"]) == ["done", "done", "done", "running", "running"]


# --------------------------------------------------------------------------- router
def test_no_audit_explains_how_to_make_one():
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "make audit" in texts(at)
    assert "No audit under" in texts(at) or "No audit to show" in texts(at)


def test_picker_lists_audits_under_runs(monkeypatch, tmp_path, digits_audit):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(digits_audit, runs / "digits")
    small = make_synthetic_audit(runs / "small", n_images=80, n_models=3, n_epochs=2)
    os.utime(small / "manifest.json", (1_000_000, 1_000_000))  # older: listed after digits
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(runs)])
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="audit_picker").options == ["digits", "small"]
    assert at.session_state["audit_path"] == str(runs / "digits")  # the newest first
    assert metrics(at)["Models"] == str(load(digits_audit).n_models)
    at.selectbox(key="audit_picker").set_value(str(small)).run()
    assert at.session_state["audit_path"] == str(small)
    assert metrics(at)["Models"] == "3"


def test_audit_from_the_command_line(monkeypatch, digits_audit):
    monkeypatch.setattr(sys, "argv", ["app.py", "--audit", str(digits_audit), "--runs", "nowhere-at-all"])
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.session_state["audit_path"] == str(digits_audit)
    assert at.title[0].value == "Overview"


def test_study_link_shows_only_the_experiment(digits_audit):
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=60)
    at.session_state["audit_path"] = str(digits_audit)
    at.query_params["study"] = "some-study"
    at.query_params["observer"] = "X1"
    at.run()
    assert not [s for s in at.selectbox if s.key == "audit_picker"]  # no audit picker in a sidebar
    assert not at.metric  # nothing of the report
    assert "Overview" not in [t.value for t in at.title]
