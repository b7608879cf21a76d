"""The report's every number, pinned: three audits made without training (a synthetic audit with dynamics
and scored models, and model-vs-human's own raw data with humans) give the summary, the CLI's text, every
table and decision map, the figures' names and the per-image scores of tests/data/report_golden.json,
taken before the report was restructured into registered parts."""

from __future__ import annotations

import json

import pytest

from audit.report import build_report
from audit.store import load
from tests.report_snapshot import GOLDEN, differences, golden_audits, snapshot


@pytest.fixture(scope="module")
def golden_reports(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("golden")
    out = {}
    for name, path in golden_audits(root).items():
        build_report(load(path))
        out[name] = json.loads(json.dumps(snapshot(path)))  # as stored: tuples as lists, keys as text
    return out


@pytest.mark.parametrize("name", ["synthetic", "mvh-colour", "mvh-cue-conflict"])
def test_report_equals_the_pinned_snapshot(golden_reports, name):
    want = json.loads(GOLDEN.read_text())[name]
    # numbers to 1e-6: another CPU's BLAS may round the fits' last bits differently; a changed formula moves
    # them far more (tests/test_report_golden.py::test_differences_sees_a_changed_number)
    assert differences(golden_reports[name], want, rtol=1e-6) == []


def test_the_snapshot_reaches_every_part_that_runs_without_training():
    """Every part but the deeper measures and representations, which need a trained network's stored files
    (prediction depth, probabilities, Gram matrices): tests/test_depth_report.py and tests/test_deeper_page.py
    check those on a real audit."""
    want = json.loads(GOLDEN.read_text())
    keys = set().union(*(set(s["summary"]) for s in want.values()))
    assert {"models", "split", "error_consistency", "classes", "confusion", "dynamics", "training_scores",
            "stability", "humans", "scored"} <= keys


def test_differences_sees_a_changed_number():
    want = {"a": [1.0, 2.0], "b": "x"}
    assert differences({"a": [1.0, 2.0], "b": "x"}, want) == []
    assert differences({"a": [1.0, 2.0 + 1e-6], "b": "x"}, want) == ["/a[1]: 2.000001 != 2.0"]
    assert differences({"a": [1.0, 2.0 + 1e-4], "b": "x"}, want, rtol=1e-6) == ["/a[1]: 2.0001 != 2.0"]
    assert differences({"a": [1.0], "b": "x"}, want) == ["/a: 1 items, expected 2"]
