"""CSV exports: the model-vs-human raw-data layout and our complete table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from human_study.design import DesignConfig
from human_study.export import FULL_COLUMNS, MVH_COLUMNS, write_exports
from human_study.folder import create_study, open_study_dir
from tests.study_fixtures import make_study_audit


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    path = make_study_audit(tmp_path_factory.mktemp("audit") / "run")
    made = create_study(
        path,
        "export-test",
        config=DesignConfig(n_trials=12, n_practice=2, n_catch=2, size=16, seed=8),
        n_observers=2,
    )
    store, _ = open_study_dir(made.folder)
    rng = np.random.default_rng(0)
    for obs in store.admin(made.study_id, made.admin_token).observers():
        session = store.start_session(obs.id)
        while (trial := store.next_trial(obs.id)) is not None:
            if trial.position == 7:
                session = store.start_session(obs.id)  # a reload half-way
            store.record_response(
                session.id,
                trial.trial_id,
                str(rng.choice(["left", "right"])),
                rt_ms=float(rng.integers(300, 2000)),
            )
    frame = store.admin(made.study_id, made.admin_token).responses_frame()
    store.close()
    return made, frame


def test_model_vs_human_layout(answered, tmp_path):
    made, frame = answered
    mvh_path, _ = write_exports(frame, tmp_path, prefix=made.name)
    assert mvh_path.name == "export-test_model-vs-human.csv"
    mvh = pd.read_csv(mvh_path)
    assert (
        tuple(mvh.columns)
        == MVH_COLUMNS
        == ("subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename")
    )
    assert len(mvh) == 2 * 14  # practice left out
    assert set(mvh["condition"]) == {"main", "catch"}
    assert set(mvh["subj"]) == {"subject-01", "subject-02"}
    for _, g in mvh.groupby("subj"):
        assert g["trial"].tolist() == list(range(1, 15))
        # positions 0-6 in session 1 (2 practice + 5 test), position 7 on in session 2
        assert g["session"].tolist() == [1] * 5 + [2] * 9
    test = frame[frame["kind"] != "practice"].sort_values(["subj", "position"]).reset_index(drop=True)
    assert ((mvh["object_response"] == mvh["category"]) == test["correct"]).all()
    assert set(mvh["category"]) == {"impossible"}  # the question is "harder"
    assert np.allclose(mvh["rt"], test["rt_ms"] / 1000)
    first = test.iloc[0]
    assert mvh.loc[0, "imagename"] == (
        f"0001_{first['kind']}_L-{first['left_file'][:-4].replace('_', '-')}"
        f"_R-{first['right_file'][:-4].replace('_', '-')}_{first['kind']}-pair-{first['trial_id']}"
    )


def test_full_table(answered, tmp_path):
    made, frame = answered
    _, full_path = write_exports(frame, tmp_path, prefix=made.name)
    full = pd.read_csv(full_path)
    assert tuple(full.columns) == FULL_COLUMNS
    assert len(full) == len(frame) == 2 * 16
    assert (full["kind"] == "practice").sum() == 4
    text = full_path.read_text()
    for code in made.observer_codes:
        assert code not in text, "observer codes are credentials and stay out of exports"
    assert full["answered_at"].str.endswith("+00:00").all()
    chose_trivial = full["choice"] == full["trivial_side"]
    assert (full["chosen_category"] == np.where(chose_trivial, "trivial", "impossible")).all()


def _mvh_reader(path) -> dict[str, pd.Series]:
    """model-vs-human's documented rule, written here: the trial key is the text after the last `_` of
    imagename, rows are matched on it, and correct = object_response == category."""
    frame = pd.read_csv(path)
    frame = frame.assign(key=frame["imagename"].str.rsplit("_", n=1).str[-1],
                         correct=frame["object_response"] == frame["category"])
    return {s: g.set_index("key")["correct"] for s, g in frame[frame["condition"] == "main"].groupby("subj")}


def test_export_round_trip_with_model_vs_human_and_import(answered, tmp_path):
    """An export, read by model-vs-human's rule and by `ddd-audit import`, gives `study analyze`'s numbers."""
    from audit import load
    from audit.metrics.consistency import error_consistency
    from human_study.analysis import observer_accuracy, pairwise_error_consistency
    from tests.conftest import run_cli

    made, frame = answered
    mvh_path, _ = write_exports(frame, tmp_path, prefix=made.name)
    accuracy = observer_accuracy(frame).set_index("subj")["accuracy"]
    kappa = pairwise_error_consistency(frame).iloc[0]
    # model-vs-human's reader matches every main trial across the two observers
    by_key = _mvh_reader(mvh_path)
    a, b = (by_key[s] for s in sorted(by_key))
    assert len(a.index.intersection(b.index)) == len(a) == kappa["n_trials"]
    common = a.index.intersection(b.index)
    assert error_consistency(a[common].to_numpy(), b[common].to_numpy()).kappa == pytest.approx(kappa["kappa"])
    for subj, series in by_key.items():
        assert series.mean() == pytest.approx(accuracy[subj])
    # ddd-audit import reads the same file into an audit whose decisions give the same numbers
    out = tmp_path / "imported"
    res = run_cli("import", str(mvh_path), "--out", str(out))
    assert res.returncode == 0, res.stderr
    result = load(out)
    main = (result.images["condition"] == "main").to_numpy()
    correct = result.correct()[main]
    assert sorted(result.model_names) == sorted(accuracy.index)
    for j, subj in enumerate(result.model_names):
        assert correct[:, j].mean() == pytest.approx(accuracy[subj])
    assert error_consistency(correct[:, 0], correct[:, 1]).kappa == pytest.approx(kappa["kappa"])
