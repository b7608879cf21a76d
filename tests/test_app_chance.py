"""Models at or near chance in the app: the Overview names them, and the Compare page explains why
there is nothing to compare instead of drawing a one-point chart; accuracies are percentages.
Through the app's data layer (audit_app/_data.py, _frames.py) and Streamlit's AppTest on the real
app.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from audit.report import Report
from audit.store import AuditDir, decisions_frame, load, write_parquet
from audit.synthetic import make_synthetic_audit
from audit_app import _data, _image_frames
from tests.test_app_status import _no_runs_folder, open_page  # noqa: F401 (an autouse fixture)


@pytest.fixture(scope="module")
def learning(tmp_path_factory):
    """Models that learn (the synthetic audit's defaults)."""
    return make_synthetic_audit(tmp_path_factory.mktemp("learning") / "audit", n_images=300, n_models=4,
                                n_epochs=5, random_state=2)


def make_chance_audit(path) -> Path:
    """Four trained variants, 3 recorded epochs, that only guess among 10 classes (about 10% right)."""
    path = make_synthetic_audit(path, n_images=300, n_models=4, n_epochs=3, n_classes=10, random_state=5)
    result = load(path)
    labels = result.labels
    ids = result.images["image_id"].to_numpy()
    rng = np.random.default_rng(0)
    for model in result.model_names:
        predicted = rng.integers(0, 10, size=(3, len(ids)))
        prob = np.full((3, len(ids)), 0.1)
        write_parquet(AuditDir(path).decision_path(model), decisions_frame([0, 1, 2], ids, predicted, prob, prob, labels))
    return path


@pytest.fixture(scope="module")
def at_chance(tmp_path_factory):
    return make_chance_audit(tmp_path_factory.mktemp("chance") / "audit")


def test_models_at_chance_are_named_on_the_overview(at_chance):
    data = Report.load(at_chance)
    assert data.state == "complete" and _data.status_label(data) == "complete"
    assert _data.status_message(data) is None
    names = data.model_names
    assert _data.near_chance_models(data) == names
    warning = _data.chance_warning(data)
    assert "at or near chance (10.0%" in warning and all(n in warning for n in names)

    at = open_page(at_chance)
    shown = [w.value for w in at.warning]
    assert any("at or near chance" in w and all(n in w for n in names) for w in shown)


def test_no_chance_warning_for_models_that_learn(learning):
    data = Report.load(learning)
    assert _data.near_chance_models(data) == [] and _data.chance_warning(data) is None


def test_compare_explains_why_models_at_chance_have_nothing_to_compare(at_chance):
    at = open_page(at_chance, "compare")
    assert not [c for c in at.get("vega_lite_chart") if "Accuracy-matched" in c.proto.spec]
    info = "\n".join(i.value for i in at.info)
    assert "Nothing to compare" in info and "at or near chance (10.0%)" in info


def test_compare_draws_accuracy_as_percentages(learning):
    at = open_page(learning, "compare")
    spec = next(c.proto.spec for c in at.get("vega_lite_chart") if "Accuracy-matched" in c.proto.spec)
    assert '"format": ".0%"' in spec or '"format":".0%"' in spec
    frames = [pa.ipc.open_stream(d.data.data).read_pandas()
              for c in at.get("vega_lite_chart") if "Accuracy-matched" in c.proto.spec for d in c.proto.datasets]
    xs = pd.concat([f for f in frames if "accuracy_a" in f.columns])["accuracy_a"]
    assert xs.between(0, 1).all() and xs.nunique() >= 2


def matched(rows) -> pd.DataFrame:
    cols = ["epoch_a", "epoch_b", "accuracy_a", "accuracy_b", "both", "only_a", "only_b", "neither", "beyond"]
    return pd.DataFrame(rows, columns=cols)


def test_matched_problem_without_a_curve(learning):
    data = Report.load(learning)
    a, b = data.model_names[:1], data.model_names[1:]
    one = matched([(0, 0, 0.1, 0.1, 10, 2, 3, 85, False)])  # a single point, at epoch 0
    message = _image_frames.matched_problem(one, data, a, b)
    assert "before training (epoch 0)" in message and "10.0%" in message and "10.000000" not in message
    assert "no epochs" in _image_frames.matched_problem(matched([]), data, a, b)
    two = matched([(1, 1, 0.5, 0.5, 40, 5, 5, 50, False), (2, 2, 0.7, 0.7, 60, 5, 5, 30, False)])
    assert _image_frames.matched_problem(two, data, a, b) is None
