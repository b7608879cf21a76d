"""The study-results page through Streamlit's AppTest: no data, no study list and no paths
without the right admin token; with it, accuracy with the exact binomial test and intervals,
error consistency, learning effect, response times and both CSV downloads."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint
from streamlit.testing.v1 import AppTest

from human_study.design import DesignConfig
from human_study.export import MVH_COLUMNS, model_vs_human_frame
from human_study.folder import STUDY_DIRS_ENV, STUDY_FORMAT, create_study, open_study_dir
from human_study.results import RESULTS_DATABASE_DOWN, csv_bytes
from tests.study_fixtures import make_study_audit

PAGE = str(Path(__file__).resolve().parents[1] / "audit_app" / "study_results.py")
N_MAIN = 10


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A study whose three observers answered every trial: 10/10, 7/10 and 5/10 main trials right."""
    audit = make_study_audit(tmp_path_factory.mktemp("results") / "audit")
    created = create_study(
        audit, "results", config=DesignConfig(n_trials=N_MAIN, n_practice=2, size=16, seed=8), n_observers=3
    )
    store, _ = open_study_dir(created.folder)
    for code, n_right in zip(created.observer_codes, (10, 7, 5), strict=True):
        observer = store.get_observer(created.study_id, code)
        session = store.start_session(observer.id)
        main_ids = sorted(t.trial_id for t in store.schedule(observer.id) if t.kind == "main")
        while (trial := store.next_trial(observer.id)) is not None:
            # the same pairs are right for everyone: the n_right main pairs with the lowest ids
            right = trial.kind == "practice" or main_ids.index(trial.trial_id) < n_right
            wrong = "left" if trial.correct_side == "right" else "right"
            choice = trial.correct_side if right else wrong
            store.record_response(session.id, trial.trial_id, choice, rt_ms=400.0 + 10 * trial.position)
    store.close()
    return created


@pytest.fixture(autouse=True)
def study_dirs(made, monkeypatch):
    monkeypatch.setenv(STUDY_DIRS_ENV, str(made.folder.parent.parent))


def open_page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def with_token(at: AppTest, token: str) -> AppTest:
    return at.text_input(key="results_token").input(token).run()


def shown(at: AppTest) -> str:
    """Every text on the page, widget labels and options included."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title", "subheader")
             for e in at.get(kind)]
    parts += [w.label for w in at.text_input] + [str(o) for s in at.selectbox for o in s.options]
    return "\n".join(str(p) for p in parts)


def frames(at: AppTest) -> dict:
    """The page's tables in page order (AppTest does not keep the key of a plain dataframe)."""
    names = ("observers", "accuracy", "consistency", "blocks", "rts")
    assert len(at.dataframe) == len(names)
    return {name: frame.value for name, frame in zip(names, at.dataframe, strict=True)}


def test_no_token_or_a_wrong_token_shows_no_data(made):
    at = open_page()
    assert not at.exception and at.info and "admin token" in at.info[0].value
    assert not at.dataframe and not at.get("download_button") and not at.metric
    at = with_token(at, "not-the-token")
    assert at.error and "No study on this server has this admin token" in at.error[0].value
    assert not at.dataframe and not at.get("download_button") and not at.metric
    assert not any(made.observer_codes[0] in m.value for m in at.markdown)


def test_without_the_token_no_study_is_listed_and_no_folder_can_be_typed(made):
    at = open_page()
    for page in (at, with_token(open_page(), "not-the-token")):
        text = shown(page)
        assert not page.selectbox  # no list of studies to pick from
        assert [t.key for t in page.text_input] == ["results_token"]  # no free-text folder
        for secret in (made.study_id, str(made.folder), str(made.folder.parent), "studies/"):
            assert secret not in text


def test_with_the_token_the_statistics_and_exports_are_shown(made):
    at = with_token(open_page(), made.admin_token)
    assert not at.exception and not at.error
    header = "\n".join(m.value for m in at.markdown)
    assert "3 observers, 3 finished, 36 responses" in header and "client 30" in header

    tables = frames(at)
    table = tables["accuracy"].set_index("subj")
    assert table["n_correct"].tolist() == [10, 7, 5] and set(table["n_trials"]) == {N_MAIN}
    assert table["accuracy"].tolist() == pytest.approx([100.0, 70.0, 50.0])
    # one-sided exact binomial test against 50%, by hand: P(X >= k), X ~ Bin(10, 1/2)
    assert table.loc["subject-01", "p_value"] == pytest.approx(1 / 1024)
    assert table.loc["subject-02", "p_value"] == pytest.approx((120 + 45 + 10 + 1) / 1024)
    assert table.loc["subject-03", "p_value"] == pytest.approx((252 + 210 + 120 + 45 + 10 + 1) / 1024)
    # p as people read it, never "6.23e-1": 0.623 (and 9.8e-04 below 0.001)
    assert table["p"].tolist() == ["9.8e-04", "0.172", "0.623"]
    low, high = proportion_confint(7, 10, alpha=0.05, method="wilson")
    assert table.loc["subject-02", "Wilson"] == f"{100 * low:.1f}% - {100 * high:.1f}%"
    low, high = proportion_confint(7, 10, alpha=0.05, method="beta")
    assert table.loc["subject-02", "Clopper-Pearson"] == f"{100 * low:.1f}% - {100 * high:.1f}%"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Mean accuracy"] == "73.3%" and metrics["Range"] == "50.0% - 100.0%"

    pairs = tables["consistency"]
    assert len(pairs) == 3 and set(pairs["n_trials"]) == {N_MAIN}
    # subject-02 and -03 both err on the same 3 pairs, -03 on 2 more: c_obs = 0.8, c_exp = 0.5
    row = pairs[(pairs["subj_a"] == "subject-02") & (pairs["subj_b"] == "subject-03")].iloc[0]
    assert row["c_obs"] == pytest.approx(0.8) and row["kappa"] == pytest.approx((0.8 - 0.5) / 0.5)
    assert any("Logistic regression" in m.value for m in at.markdown)
    assert tables["rts"]["rt_source"].tolist() == ["client"] * 4

    observers = tables["observers"]
    assert observers["code"].tolist() == list(made.observer_codes)
    # trials answered count the main and catch trials only; practice is apart
    assert observers["answered"].tolist() == [N_MAIN] * 3 and set(observers["of"]) == {N_MAIN}
    assert set(observers["practice"]) == {"2/2"} and observers["finished"].all()

    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["model-vs-human CSV", "All responses CSV"]
    deferred = [b.proto.deferred_file_id for b in at.get("download_button")]  # made when clicked
    assert all(deferred) and len(set(deferred)) == 2


def test_csv_bytes_of_the_model_vs_human_export(made):
    store, study = open_study_dir(made.folder)
    frame = store.admin(study.id, made.admin_token).responses_frame()
    store.close()
    text = csv_bytes(model_vs_human_frame(frame)).decode()
    lines = text.splitlines()
    assert lines[0] == ",".join(MVH_COLUMNS) and len(lines) == 1 + 3 * N_MAIN
    assert not any(code in text for code in made.observer_codes)  # codes are credentials


def fake_study(folder: Path, database: str) -> Path:
    """A study folder whose study.json points at `database`, listed before every real study."""
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({
        "format": STUDY_FORMAT, "study_id": "abcdef012345", "name": "remote",
        "created_at": "2999-01-01T00:00:00+00:00", "database": database,
    }))
    return folder


def test_a_database_error_shows_no_connection_details(made, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port with nothing listening: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = fake_study(tmp_path / "studies" / "remote", f"postgresql+psycopg://observer@127.0.0.1:{port}/studies")
    fake_study(tmp_path / "studies" / "gone", "missing.db")
    roots = os.pathsep.join([str(tmp_path / "studies"), str(made.folder.parent.parent)])
    monkeypatch.setenv(STUDY_DIRS_ENV, roots)
    for token in ("not-the-token", made.admin_token):
        at = with_token(open_page(), token)
        assert not at.exception
        text = shown(at)
        for detail in ("127.0.0.1", str(port), "postgresql", "psycopg", "observer@", str(remote), "missing.db"):
            assert detail not in text
    assert frames(at)["accuracy"]["n_correct"].tolist() == [10, 7, 5]  # the readable study still opens
    at = with_token(open_page(), "not-the-token")
    assert "2 studies could not be opened" in at.error[0].value


def test_a_database_that_fails_while_reading_results_gives_a_message(made, monkeypatch):
    import sqlalchemy as sa

    from human_study.admin import StudyAdmin

    def down(self):
        raise sa.exc.OperationalError(
            "SELECT", {}, Exception('connection to server at "10.9.8.7", port 5432 failed: timeout')
        )

    monkeypatch.setattr(StudyAdmin, "responses_frame", down)
    monkeypatch.setattr(StudyAdmin, "response_stamp", down)  # a database that is down fails every query
    at = with_token(open_page(), made.admin_token)
    assert not at.exception
    assert at.error and at.error[0].value == RESULTS_DATABASE_DOWN
    assert "10.9.8.7" not in shown(at) and "5432" not in shown(at)


def test_one_observer_and_a_new_response_reach_the_page(made, tmp_path, monkeypatch):
    """The page analyses once per change of the responses: a new answer shows at the next run, and a
    single observer's SD reads "n/a (one observer)" rather than a dash."""
    audit = make_study_audit(tmp_path / "audit")
    created = create_study(audit, "solo", config=DesignConfig(n_trials=6, n_practice=0, size=16, seed=2),
                           n_observers=1, base_url="http://10.0.0.5:8501")
    monkeypatch.setenv(STUDY_DIRS_ENV, str(tmp_path))
    store, _ = open_study_dir(created.folder)
    observer = store.get_observer(created.study_id, created.observer_codes[0])
    session = store.start_session(observer.id)
    for _ in range(3):
        trial = store.next_trial(observer.id)
        store.record_response(session.id, trial.trial_id, trial.correct_side, rt_ms=500.0)
    at = with_token(open_page(), created.admin_token)
    assert not at.exception
    assert "3 responses" in shown(at)
    assert [m.value for m in at.metric if m.label in ("Range", "SD over observers")] == ["n/a (one observer)"] * 2
    assert "1 observer, 0 finished" in shown(at)
    links = at.dataframe[0].value["link"].tolist()  # one observer: no consistency table
    assert links and links[0].startswith("http://10.0.0.5:8501/experiment?study=")  # the study's own address
    trial = store.next_trial(observer.id)
    store.record_response(session.id, trial.trial_id, trial.correct_side, rt_ms=500.0)
    store.close()
    at.run()
    assert "4 responses" in shown(at)


def test_the_page_says_when_the_study_was_made_from_a_weak_audit(made, tmp_path, monkeypatch):
    audit = make_study_audit(tmp_path / "audit", n_models=1, n_near=0, n_mixed=0)
    created = create_study(audit, "weak", config=DesignConfig(n_trials=4, n_practice=0, size=16, seed=2),
                           n_observers=1, allow_incomplete=True)
    monkeypatch.setenv(STUDY_DIRS_ENV, os.pathsep.join([str(tmp_path), str(made.folder.parent.parent)]))
    at = with_token(open_page(), created.admin_token)
    assert not at.exception
    assert any("complete audit of 1 model (--allow-incomplete)" in w.value and "says little" in w.value
               for w in at.warning)
    at = with_token(open_page(), made.admin_token)  # a sound study: a plain caption
    assert not at.warning
    assert "Made from a complete audit of 5 models." in shown(at)


def test_the_page_as_data_without_streamlit(made):
    """results_page gives the frames and words that the page lays out, and downloads whose bytes are the
    exports'."""
    from human_study.analysis import analyze
    from human_study.results import analysis_bundle, default_block, results_page

    store, study = open_study_dir(made.folder)
    with store:
        admin = store.admin(study.id, made.admin_token)
        bundle = analysis_bundle(admin, alpha=0.1, block=default_block(study))
        page = results_page(admin, bundle, alpha=0.1, block=default_block(study), base_url="http://host:8501")
        responses = admin.responses_frame()
    words = page.words
    assert words.title == f"results ({study.id})"
    assert "3 observers, 3 finished, 36 responses. Response times measured: client 30." in words.intro
    assert "intervals at 90%." in words.accuracy_caption  # 1 - alpha
    assert dict(words.metrics) == {"Mean accuracy": "73.3%", "Range": "50.0% - 100.0%", "SD over observers": "25.2%"}
    assert words.consistency.startswith("Mean kappa") and "over 3 pairs of observers" in words.consistency
    assert words.fits_caption is None and words.fits_empty is None and page.fits is None  # a fixed study
    assert page.accuracy["n_correct"].tolist() == [10, 7, 5] and len(page.consistency) == 3
    assert [r["link"].startswith("http://host:8501/") for r in page.observers] == [True] * 3
    assert analyze(responses, alpha=0.1, block=default_block(study)).accuracy["mean"] == pytest.approx(22 / 30)
    assert [(d.name, d.label, d.file_name) for d in page.downloads] == [
        ("mvh", "model-vs-human CSV", "results_model-vs-human.csv"),
        ("full", "All responses CSV", "results_responses.csv")]
    assert page.downloads[0].make() == csv_bytes(model_vs_human_frame(responses))
    assert set(page.figures) >= {"accuracy", "consistency", "learning", "response_times"}
