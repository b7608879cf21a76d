"""Report parts registered from outside the package: one function and a decorator reach summary.json, the
written tables, the CLI's summary text and the app's Overview; `Report.at_tolerance` recomputes only the parts
that depend on the tolerance (docs/architecture.md, "Where to add")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from audit.report import (
    BUILT_IN_PARTS,
    Report,
    added_parts,
    build_report,
    compute_report,
    format_summary,
    register_part,
    report_parts,
    unregister_part,
)
from audit.store import load
from audit.synthetic import make_synthetic_audit

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[tuple[str, int]] = []


def _toy_lines(summary: dict) -> list[str]:
    toy = summary.get("toy")
    return [f"Toy part: {toy['impossible_per_class']:.2f} impossible images per class"] if toy else []


def toy_part(inputs, content) -> None:
    """Impossible images per class, and a table of them by class."""
    CALLS.append(("toy", inputs.split.tolerance_used))
    impossible = inputs.split.mask("impossible")
    per_class = np.bincount(inputs.result.labels[impossible], minlength=inputs.result.n_classes)
    content.summary["toy"] = {"impossible_per_class": float(per_class.mean())}
    content.outputs["toy_by_class.csv"] = pd.DataFrame({"class": np.arange(len(per_class)), "impossible": per_class})


def counting_part(inputs, content) -> None:
    CALLS.append(("counting", inputs.split.tolerance_used))


@pytest.fixture
def with_toy():
    register_part("toy", order=95, summary_lines=_toy_lines)(toy_part)
    register_part("counting", order=96, depends_on_tolerance=False)(counting_part)
    CALLS.clear()
    yield
    unregister_part("toy")
    unregister_part("counting")


@pytest.fixture
def audit_dir(tmp_path) -> Path:
    return make_synthetic_audit(tmp_path / "a", n_images=300, n_models=7, n_epochs=3, random_state=2)


def test_an_outside_part_reaches_the_summary_the_tables_and_the_text(with_toy, audit_dir):
    assert [p.name for p in added_parts()] == ["toy", "counting"]
    assert BUILT_IN_PARTS[-1] == "scored" and "toy" not in BUILT_IN_PARTS
    summary = build_report(load(audit_dir), figures=False)
    result = load(audit_dir)
    impossible = result.images["category"].to_numpy() == "impossible"
    by_hand = np.bincount(result.labels[impossible], minlength=result.n_classes).mean()
    assert summary["toy"]["impossible_per_class"] == pytest.approx(by_hand)
    assert json.loads((audit_dir / "report" / "summary.json").read_text())["toy"] == summary["toy"]
    table = pd.read_csv(audit_dir / "report" / "toy_by_class.csv")
    assert table["impossible"].sum() == impossible.sum()
    assert "toy_by_class.csv" in summary["files"]["tables"]
    text = format_summary(summary)
    assert f"Toy part: {by_hand:.2f} impossible images per class" in text
    assert text.index("Toy part") > text.index("Mean error consistency")  # in report order (95: after the split)


def test_an_outside_part_shows_on_the_overview(with_toy, audit_dir):
    build_report(load(audit_dir), figures=False)
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(audit_dir)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(h.value.startswith("Toy part:") for h in at.subheader)


def test_at_tolerance_recomputes_only_the_parts_that_depend_on_it(with_toy, audit_dir):
    build_report(load(audit_dir), figures=False)
    report = Report.load(audit_dir)
    assert report.source == "current" and report.tolerance == 1
    CALLS.clear()
    strict = report.at_tolerance(0)
    assert CALLS == [("toy", 0)]  # "counting" does not depend on the tolerance, the deeper parts are left as written
    assert strict.summary["toy"] != report.summary["toy"] or strict.split_counts != report.split_counts
    assert strict.table("toy_by_class.csv")["impossible"].sum() == strict.split_counts["impossible"]
    assert strict.summary["tolerance_used"] == 0 and report.summary["tolerance_used"] == 1
    assert report.at_tolerance(1) is report


def test_parts_by_name_and_bad_registrations(with_toy, audit_dir):
    result = load(audit_dir)
    content = compute_report(result, n_bootstrap=0, parts=["toy"])
    assert set(content.summary) >= {"models", "split", "toy"} and "error_consistency" not in content.summary
    with pytest.raises(ValueError, match="unknown report parts"):
        compute_report(result, parts=["nope"])
    with pytest.raises(ValueError, match="needs a name"):
        register_part("", order=1)
    names = [p.name for p in report_parts()]
    assert names.index("humans") < names.index("toy") < names.index("scored")  # by order: 90 < 95 < 100


def test_the_worked_example_in_the_docs_runs(audit_dir):
    """docs/architecture.md's example part, run as written: it reaches the summary, a table and the text."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/architecture.md", "exec"), namespace)  # registers the part
    try:
        summary = build_report(load(audit_dir), figures=False)
        result = load(audit_dir)
        impossible = result.images["category"].to_numpy() == "impossible"
        counts = np.bincount(result.labels[impossible], minlength=result.n_classes)
        assert summary["impossible_by_class"]["mean"] == pytest.approx(counts.mean())
        table = pd.read_csv(audit_dir / "report" / "impossible_by_class.csv")
        assert list(table["impossible"]) == list(counts)
        assert "Impossible images per class:" in format_summary(summary)
    finally:
        unregister_part("impossible_by_class")
