"""The analysis and export mistakes a first user met, one test each: trial blocks past the last
trial, an odds ratio over trials the study does not have, p-values as "9.42e-1", practice
counted as answered trials, consent asked again after a reload, database ids as session
numbers and float noise in the model-vs-human rt."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from human_study import experiment as xp
from human_study.analysis import accuracy_by_block, analyze, format_analysis, format_p_value
from human_study.design import DesignConfig
from human_study.export import model_vs_human_frame
from human_study.folder import STUDY_DIRS_ENV, create_study, open_study_dir
from human_study.records import Progress
from human_study.results import csv_bytes, default_block
from tests.study_fixtures import make_study_audit

PAGE = str(Path(__file__).resolve().parents[1] / "audit_app" / "experiment.py")


def twenty_trials(n_observers: int = 2) -> pd.DataFrame:
    """Main-trial responses of a 20-trial study, with a learning trend."""
    rng = np.random.default_rng(1)
    rows = []
    for s in range(n_observers):
        for number in range(1, 21):
            p = 1 / (1 + np.exp(-(number - 8) / 4))
            rows.append(
                {"subj": f"subject-{s + 1:02d}", "kind": "main", "trial_id": 100 + number, "number": number,
                 "correct": bool(rng.random() < p), "rt_ms": 900.0, "rt_source": "client"}
            )
    return pd.DataFrame(rows)


def test_trial_blocks_end_at_the_last_trial():
    frame = twenty_trials()
    blocks = accuracy_by_block(frame, block=3, n_numbers=20)
    assert blocks["last"].tolist()[-1] == 20 and blocks["first"].tolist()[-1] == 19
    assert accuracy_by_block(frame, block=25, n_numbers=20)[["first", "last"]].values.tolist() == [[1, 20]]
    text = format_analysis(analyze(frame, block=3, n_numbers=20))
    assert "19-20:" in text and "19-21" not in text


def test_the_odds_ratio_spans_the_studys_own_trials():
    result = analyze(twenty_trials(3), n_numbers=20)
    le = result.learning
    assert le.last_number == 20
    assert le.odds_ratio_first_to_last == pytest.approx(np.exp(19 * le.slope))
    text = format_analysis(result)
    assert "odds ratio from trial 1 to trial 20" in text and "per 100" not in text


@pytest.mark.parametrize(
    "p, shown", [(0.942, "0.942"), (0.0123, "0.012"), (0.001, "0.001"), (5.0e-8, "5.0e-08"), (float("nan"), "-")]
)
def test_p_values_read_as_people_write_them(p, shown):
    assert format_p_value(p) == shown


def test_no_p_value_in_the_analysis_is_printed_in_exponent_form_above_0_001():
    text = format_analysis(analyze(twenty_trials(), n_numbers=20))
    assert "e-01" not in text and "e-1" not in text


def test_where_an_observer_stands_leaves_the_practice_out():
    # 5 practice and 20 main trials; 10 answered = the 5 practice and 5 main trials
    progress = Progress(10, 25, 5, 5, 20, 5)
    text = xp.welcome_back_text(progress)
    assert "answered 5 of 20 trials" in text and "10 of 25" not in text
    in_practice = xp.welcome_back_text(Progress(3, 25, 5, 3, 20, 0))
    assert "3 of 5 practice trials" in in_practice


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("mistakes") / "audit")
    return create_study(
        audit, "mistakes", config=DesignConfig(n_trials=4, n_practice=1, size=16, seed=12), n_observers=3
    )


def test_a_reload_before_the_first_trial_does_not_ask_for_consent_again(made, monkeypatch):
    monkeypatch.setenv(STUDY_DIRS_ENV, str(made.folder.parent.parent))

    def page() -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["study"] = made.study_id
        at.query_params["observer"] = made.observer_codes[0]
        return at.run()

    at = page()
    assert [b.key for b in at.button] == ["xp_consent"]
    at.button(key="xp_consent").click().run()
    assert [b.key for b in at.button] == ["xp_start"]
    at = page()  # the browser reloads before the first trial: a new session
    assert not at.exception and [b.key for b in at.button] == ["xp_start"]  # instructions, no consent
    store, study = open_study_dir(made.folder)
    with store:
        assert store.get_observer(study.id, made.observer_codes[0]).consented_at is not None
        assert store.get_observer(study.id, made.observer_codes[1]).consented_at is None


def test_the_export_session_is_a_session_number_and_rt_has_no_float_noise(made):
    store, study = open_study_dir(made.folder)
    with store:
        a = store.get_observer(study.id, made.observer_codes[1])
        b = store.get_observer(study.id, made.observer_codes[2])
        sa1 = store.start_session(a.id)
        sb1 = store.start_session(b.id)  # sessions of two observers interleave: ids are not numbers
        for _ in range(3):
            t = store.next_trial(a.id)
            store.record_response(sa1.id, t.trial_id, "left", rt_ms=2928.1)
            t = store.next_trial(b.id)
            store.record_response(sb1.id, t.trial_id, "right", rt_ms=1234.5)
        store.start_session(a.id)  # a reload that answered nothing
        sa3 = store.start_session(a.id)
        while (t := store.next_trial(a.id)) is not None:
            store.record_response(sa3.id, t.trial_id, "left", rt_ms=2928.1)
        frame = store.admin(study.id, made.admin_token).responses_frame()
    mvh = model_vs_human_frame(frame)
    assert sa3.id > 4 and sa3.index == 3
    of_a = mvh[mvh["subj"] == a.subject]
    assert of_a["session"].tolist() == [1, 1, 2, 2]  # practice left out; the empty reload leaves no gap
    assert set(mvh[mvh["subj"] == b.subject]["session"]) == {1}
    text = csv_bytes(mvh).decode()
    assert ",2.9281," in text and "2.928099" not in text and "2.92809999" not in text
    assert pd.read_csv(io.StringIO(text))["rt"].tolist()[0] == 2.9281


def test_the_results_block_for_a_20_trial_study_ends_at_20():
    study = type("S", (), {"n_trials": 20, "n_catch": 0})()
    block = default_block(study)
    blocks = accuracy_by_block(twenty_trials(), block=block, n_numbers=20)
    assert block == 3 and blocks["last"].max() == 20 and json.dumps(blocks["last"].tolist()).count("21") == 0
