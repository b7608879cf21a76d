"""The adaptive 2AFC design (human_study.adaptive) and its psychometric fits (human_study.psychometric):
simulated observers with known thresholds answer through the real store and design code, a restarted store
replays every observer exactly, the staircase moves as 2-down-1-up must, psignifit called directly on the
exported tidy CSV gives the same fit, and the fixed design is what it was."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from human_study.adaptive import (
    QuestProcedure,
    gap_levels,
    make_procedure,
    questplus,
    slope_prior,
    weibull_alpha,
)
from human_study.design import DesignConfig
from human_study.errors import StudyError
from human_study.export import MVH_COLUMNS, TIDY_COLUMNS, model_vs_human_frame, write_tidy
from human_study.folder import create_study, open_study_dir
from human_study.schema import reading, sessions
from human_study.settings import StudySettingsError
from human_study.visit import Store
from tests.study_fixtures import make_study_audit, write_audit

N_MODELS = 40
LAPSE = 0.02


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """1,600 images whose n_correct is spread evenly over 0..40: pairs exist at every gap."""
    rng = np.random.default_rng(0)
    return write_audit(tmp_path_factory.mktemp("adaptive") / "audit", rng.integers(0, N_MODELS + 1, 1600),
                       rng.integers(0, 4, 1600), n_models=N_MODELS, n_classes=4)


def adaptive_study(audit, name, tmp_path, *, observers=1, **config):
    settings = {"design": "adaptive", "n_trials": 120, "n_practice": 0, "size": 16, "seed": 5, **config}
    return create_study(audit, name, config=DesignConfig(**settings), n_observers=observers,
                        studies_root=tmp_path)


def level_of(store, study, trial_id: int) -> float:
    with reading(store.engine) as conn:
        return {t.id: t.level for t in store.planner().pool(conn, study)}[trial_id]


def answer(store, study, code, *, threshold, beta, rng, n=None, session=None):
    """A simulated observer: a Weibull with this threshold (halfway from guessing to 1 - LAPSE, 75% correct
    without lapses) and slope answers `n` trials (all by default) through the store."""
    observer = store.get_observer(study.id, code)
    session = session or store.start_session(observer.id)
    alpha = weibull_alpha(threshold, beta, lapse=0.0)
    for _ in range(n if n is not None else 10**6):
        trial = store.next_trial(observer.id)
        if trial is None:
            break
        level = level_of(store, study, trial.trial_id)
        right = rng.random() < 1 - LAPSE - (0.5 - LAPSE) * math.exp(-((level / alpha) ** beta))
        wrong = "left" if trial.correct_side == "right" else "right"
        store.record_response(session.id, trial.trial_id, trial.correct_side if right else wrong, rt_ms=600.0)
    return observer


def replayed_levels(store, study, observer) -> tuple[list[float], float]:
    """The stored (level, correct) of the observer's main trials, fed to a fresh procedure by hand, and
    the level that procedure asks for next."""
    frame = store.admin(study.id, TOKENS[study.id]).responses_frame()
    rows = frame[(frame["observer_id"] == observer.id) & (frame["kind"] == "main")].sort_values("position")
    procedure = make_procedure(study.config["procedure"], sorted({float(v) for v in LEVELS[study.id]}),
                               lapse=study.config["lapse"])
    for level, correct in zip(rows["level"], rows["correct"], strict=True):
        procedure.update(float(level), bool(correct))
    return rows["level"].tolist(), procedure.next_level()


TOKENS: dict[str, str] = {}
LEVELS: dict[str, list[float]] = {}


def opened(made):
    store, study = open_study_dir(made.folder)
    TOKENS[study.id] = made.admin_token
    LEVELS[study.id] = sorted({(p.trivial_n_correct - p.impossible_n_correct) / N_MODELS
                               for p in made.design.of_kind("main")})
    return store, study


# --------------------------------------------------------------------------- the pool
def test_gaps_are_spread_on_a_log_scale_with_both_ends():
    assert gap_levels(5, 20).tolist() == [1, 2, 3, 4, 5]
    gaps = gap_levels(40, 20)
    assert len(gaps) == 20 and gaps[0] == 1 and gaps[-1] == 40
    assert gaps[:9].tolist() == list(range(1, 10))  # every small gap, where a step of one is a big ratio
    ratios = gaps[1:] / gaps[:-1]
    assert ratios[gaps[:-1] >= 10].max() < 1.25  # and even ratios above them, not a linear grid
    assert (np.diff(gaps) > 0).all()


def test_the_pool_holds_pairs_at_each_gap_with_no_image_twice_in_a_gap(audit, tmp_path):
    made = adaptive_study(audit, "pool", tmp_path, n_practice=4, pairs_per_level=10, match_class=True)
    main = made.design.of_kind("main")
    gaps = {}
    for p in main:
        gap = p.trivial_n_correct - p.impossible_n_correct
        assert gap > 0 and p.trivial_label == p.impossible_label  # easier image first; class-matched
        gaps.setdefault(gap, []).append(p)
    assert sorted(gaps) == gap_levels(N_MODELS, 20).tolist()
    for pairs in gaps.values():
        images = [i for p in pairs for i in (p.trivial_image_id, p.impossible_image_id)]
        assert len(images) == len(set(images)) and len(pairs) <= 10
    practice = made.design.of_kind("practice")
    assert [p.trivial_n_correct - p.impossible_n_correct for p in practice] == [N_MODELS] * 4
    assert (made.folder / "images").is_dir()


def test_an_adaptive_study_has_no_catch_trials():
    with pytest.raises(StudySettingsError, match="--catch"):
        DesignConfig(design="adaptive", n_catch=2).validate()


# --------------------------------------------------------------------------- replay and resume
def test_a_restarted_server_resumes_each_observer_exactly(audit, tmp_path):
    made = adaptive_study(audit, "resume", tmp_path, observers=2, n_practice=3, n_trials=40)
    store, study = opened(made)
    rng = np.random.default_rng(1)
    first = answer(store, study, made.observer_codes[0], threshold=0.2, beta=3.0, rng=rng, n=25)
    before = store.next_trial(first.id)
    upcoming = store.upcoming_trials(first.id)
    store.close()
    with Store(store.url) as fresh:  # a new process: no cached state, everything replayed from the database
        again = fresh.next_trial(first.id)
        assert again == before
        assert fresh.upcoming_trials(first.id) == upcoming and 1 <= len(upcoming) <= 2
        levels, expected = replayed_levels(fresh, study, first)
        assert len(levels) == 22  # 25 answers, 3 of them practice
        assert level_of(fresh, study, again.trial_id) == pytest.approx(expected)
        # nothing twice: a repeated answer is the stored one, a trial that is not next is refused
        session = fresh.start_session(first.id)
        answered = fresh.schedule(first.id)[10]
        repeat = fresh.record_response(session.id, answered.trial_id, "left")
        assert not repeat.created
        known = {t.trial_id for t in fresh.schedule(first.id)}
        with reading(fresh.engine) as conn:
            other = next(t for t in fresh.planner().pool(conn, study) if t.kind == "main" and t.id not in known)
        with pytest.raises(StudyError, match="not part of this observer's study"):
            fresh.record_response(session.id, other.id, "left")
        answer(fresh, study, made.observer_codes[0], threshold=0.2, beta=3.0, rng=rng, session=session)
        assert fresh.progress(first.id).finished and fresh.next_trial(first.id) is None
        frame = fresh.admin(study.id, made.admin_token).responses_frame()
    mine = frame[frame["observer_id"] == first.id]
    assert len(mine) == 43 and mine["position"].tolist() == list(range(43))
    assert mine["trial_id"].is_unique  # no pair twice for one observer
    main = mine[mine["kind"] == "main"]
    shown = pd.concat([main["trivial_image_id"], main["impossible_image_id"]])
    assert shown.is_unique  # the pool is large enough: no image twice for one observer
    assert (main["trivial_side"] == "left").sum() == 20  # sides balanced exactly over the 40 main trials


def test_the_staircase_goes_two_down_one_up(audit, tmp_path):
    made = adaptive_study(audit, "stairs", tmp_path, procedure="staircase", n_trials=12, n_levels=8)
    store, study = opened(made)
    observer = store.get_observer(study.id, made.observer_codes[0])
    session = store.start_session(observer.id)
    script = [True, True, True, True, False, True, True, False, False, True, True, True]
    seen = []
    for right in script:
        trial = store.next_trial(observer.id)
        seen.append(level_of(store, study, trial.trial_id))
        wrong = "left" if trial.correct_side == "right" else "right"
        store.record_response(session.id, trial.trial_id, trial.correct_side if right else wrong)
    levels = LEVELS[study.id]
    top = len(levels) - 1
    # steps of two levels until the first reversal, then one: 2 right -> down, 1 wrong -> up
    index = [top, top, top - 2, top - 2, top - 4, top - 3, top - 3, top - 4, top - 3, top - 2, top - 2, top - 3]
    assert seen == pytest.approx([levels[i] for i in index])


# --------------------------------------------------------------------------- recovery
@pytest.fixture(scope="module")
def recovery(audit, tmp_path_factory):
    """50 observers, thresholds 0.15-0.45 and Weibull slopes 3-5 (lapse 0.02), 120 trials each through the store;
    for each, whether the median of QUEST+'s replayed posterior of the threshold is within 10% of the truth and
    whether its central 95% interval covers it. The true thresholds and slopes are drawn apart from QUEST+'s
    prior (log-normal slopes around 3.5, log-sd 0.35; thresholds log-uniform over 0.0125-1.25)."""
    made = adaptive_study(audit, "recovery", tmp_path_factory.mktemp("recovery"), observers=50)
    store, study = opened(made)
    rng = np.random.default_rng(2024)
    within, covered = [], []
    with store:
        for code in made.observer_codes:
            threshold, beta = rng.uniform(0.15, 0.45), rng.uniform(3.0, 5.0)
            observer = answer(store, study, code, threshold=threshold, beta=beta, rng=rng)
            assert store.progress(observer.id).n_test_answered == 120
            with reading(store.engine) as conn:
                est = store.planner().state(conn, study, observer).procedure.estimate()
            within.append(abs(est["threshold"] - threshold) <= 0.1 * threshold)
            covered.append(est["low"] <= threshold <= est["high"])
    print(f"recovery: {np.mean(within):.0%} within 10%, {np.mean(covered):.0%} covered by the 95% interval")
    return np.array(within), np.array(covered)


@pytest.mark.slow
def test_the_95_percent_interval_covers_nine_thresholds_in_ten(recovery):
    assert recovery[1].mean() >= 0.9  # measured: 100%


@pytest.mark.slow
def test_four_thresholds_in_five_are_recovered_within_ten_percent(recovery):
    assert recovery[0].mean() >= 0.8  # measured: 88% (issue #30's criterion)


def test_quest_follows_questplus_update_and_choice_of_level():
    """The procedure's array posterior and next level are questplus's own (its update and next_stim on the
    same grid and prior), answer by answer, including answers at levels QUEST+ did not ask for."""
    levels = gap_levels(N_MODELS, 20) / N_MODELS
    ours, theirs = QuestProcedure(levels, lapse=LAPSE), questplus(levels, lapse=LAPSE)
    rng = np.random.default_rng(4)
    for _ in range(40):
        level = ours.next_level()
        assert level == theirs.next_stim["intensity"]
        if rng.random() < 0.25:
            level = float(rng.choice(levels))
        correct = bool(rng.random() < 0.75)
        ours.update(level, correct)
        theirs.update(stim={"intensity": level}, outcome={"response": "Correct" if correct else "Incorrect"})
        expected = theirs.posterior.squeeze(["lower_asymptote", "lapse_rate"]).transpose("threshold", "slope")
        np.testing.assert_allclose(ours.posterior, expected.to_numpy().ravel(), rtol=1e-9, atol=1e-300)


def test_the_slope_prior_is_a_log_normal_around_three_and_a_half():
    from scipy.stats import lognorm

    slopes = np.array([1.0, 2.0, 3.5, 5.6, 8.0])
    density_in_log_slope = lognorm(s=0.35, scale=3.5).pdf(slopes) * slopes  # density of ln(beta), on these points
    np.testing.assert_allclose(slope_prior(slopes), density_in_log_slope / density_in_log_slope.sum(), rtol=1e-12)
    assert slope_prior(slopes).argmax() == 2
    prior = questplus(gap_levels(N_MODELS, 20) / N_MODELS, lapse=LAPSE).prior.squeeze()
    assert prior.sum("threshold").to_numpy() == pytest.approx(slope_prior(prior["slope"].to_numpy()))


def test_quest_converges_near_a_known_threshold_without_the_store():
    """The procedure alone, against the expected proportions (no sampling noise): the next levels settle
    near the threshold and the estimate lands close to it."""
    levels = gap_levels(N_MODELS, 20) / N_MODELS
    quest = QuestProcedure(levels, lapse=LAPSE)
    alpha = weibull_alpha(0.3, 4.0, lapse=0.0)
    rng = np.random.default_rng(3)
    for _ in range(60):
        level = quest.next_level()
        quest.update(level, rng.random() < 1 - LAPSE - (0.5 - LAPSE) * math.exp(-((level / alpha) ** 4.0)))
    est = quest.estimate()
    assert est["low"] < 0.3 < est["high"] and est["high"] - est["low"] < 0.3
    assert 0.2 < est["threshold"] < 0.4


# --------------------------------------------------------------------------- fits and export
def test_the_fit_equals_psignifit_called_on_the_exported_csv(audit, tmp_path):
    import psignifit

    from human_study.psychometric import format_fits, psignifit_options, study_fits

    made = adaptive_study(audit, "fits", tmp_path, observers=2, n_trials=60)
    store, study = opened(made)
    rng = np.random.default_rng(7)
    with store:
        for code, threshold in zip(made.observer_codes, (0.2, 0.35), strict=True):
            answer(store, study, code, threshold=threshold, beta=4.0, rng=rng)
        frame = store.admin(study.id, made.admin_token).responses_frame()
    table, fits = study_fits(frame, study.config)
    assert table["subj"].tolist() == ["subject-01", "subject-02", "all"]
    assert (table["n_trials"] == [60, 60, 120]).all()
    assert (table["threshold_low"] < table["threshold"]).all() and (table["threshold"] < table["threshold_high"]).all()
    assert "psignifit, 2AFC weibull" in format_fits(table)
    path = write_tidy(frame, tmp_path / "export", prefix="fits")
    tidy = pd.read_csv(path)
    assert tuple(tidy.columns) == TIDY_COLUMNS and len(tidy) == 120
    for subj, rows in [*tidy.groupby("observer"), ("all", tidy)]:
        counts = rows.groupby("level")["correct"].agg(["sum", "count"]).reset_index()
        data = np.column_stack([np.log(counts["level"]), counts["sum"], counts["count"]])
        direct = psignifit.psignifit(data, **psignifit_options("weibull", stimulus_range=(1 / N_MODELS, 1.0)))
        ours = table.set_index("subj").loc[subj]
        assert ours["threshold"] == pytest.approx(math.exp(direct.parameter_estimate["threshold"]), rel=1e-9)
        low, high = direct.confidence_intervals["threshold"]["0.95"]
        assert (ours["threshold_low"], ours["threshold_high"]) == pytest.approx((math.exp(low), math.exp(high)))
    mvh = model_vs_human_frame(frame)
    assert list(mvh.columns) == [*MVH_COLUMNS, "level"]
    assert mvh["level"].tolist() == frame.sort_values(["subj", "position"])["level"].tolist()


def test_analyze_prints_the_fits_and_draws_them(audit, tmp_path):
    from typer.testing import CliRunner

    from audit.cli import app

    made = adaptive_study(audit, "cli", tmp_path, observers=1, n_trials=40)
    store, study = opened(made)
    with store:
        answer(store, study, made.observer_codes[0], threshold=0.25, beta=4.0, rng=np.random.default_rng(9))
    runner = CliRunner()
    args = ["study", "analyze", "--study-dir", str(made.folder), "--token", made.admin_token]
    result = runner.invoke(app, [*args, "--psychometric", "logistic", "--figures", str(tmp_path / "fig")])
    assert result.exit_code == 0, result.output
    assert "Psychometric functions (psignifit, 2AFC logistic" in result.output
    assert (tmp_path / "fig" / "cli_psychometric.png").stat().st_size > 1000
    exported = runner.invoke(app, ["study", "export", "--study-dir", str(made.folder), "--token", made.admin_token])
    assert exported.exit_code == 0 and "cli_levels.csv" in exported.output


# --------------------------------------------------------------------------- the fixed design and the display
def test_the_fixed_design_is_unchanged(tmp_path):
    """The same pairs and the same schedules as before the adaptive design (digest of the version before it),
    no level anywhere, and the next pair to preload is the schedule's next."""
    audit = make_study_audit(tmp_path / "a", random_state=3)
    made = create_study(audit, "fixed", config=DesignConfig(n_trials=40, n_practice=3, n_catch=4, match_class=True,
                                                           size=16, seed=11), n_observers=3)
    store, study = open_study_dir(made.folder)
    with store:
        rows = [(p.kind, p.pair_index, p.trivial_image_id, p.impossible_image_id) for p in made.design.pairs]
        ids = [store.get_observer(study.id, c).id for c in made.observer_codes]
        schedules = [[(t.kind, t.left_file, t.right_file, t.correct_side) for t in store.schedule(i)] for i in ids]
        assert store.upcoming_trials(ids[0]) == [store.schedule(ids[0])[1]]
        frame = store.admin(study.id, made.admin_token).responses_frame()
    digest = hashlib.sha256(json.dumps([rows, schedules]).encode()).hexdigest()
    assert digest == "975d7031cfd62dda3bfa1abe5a85423a3d4f52d98b69e2da16c6471f72f18572"
    assert "level" not in frame and list(model_vs_human_frame(frame).columns) == list(MVH_COLUMNS)


def test_the_refresh_interval_is_stored_with_the_session(audit, tmp_path):
    from human_study import experiment as xp

    made = adaptive_study(audit, "refresh", tmp_path, n_trials=4)
    store, study = opened(made)
    with store:
        visit = xp.start_visit(store, study, made.observer_codes[0])
        trial = store.next_trial(visit.observer_id)
        refresh = xp.client_refresh({"refresh_ms": 16.68})
        assert xp.client_refresh({"refresh_ms": 0.5}) is None and xp.client_refresh({"refresh_ms": True}) is None
        xp.submit_answer(store, visit, trial.trial_id, "left", rt_ms=500.0, refresh_ms=refresh)
        data = xp.trial_data(store, study, store.next_trial(visit.observer_id), size=16,
                             upcoming=store.upcoming_trials(visit.observer_id))
        with reading(store.engine) as conn:
            stored = conn.execute(sa.select(sessions.c.refresh_ms).where(sessions.c.id == visit.session_id)).scalar()
    assert stored == pytest.approx(16.68)
    assert 1 <= len(data["preload"]) <= 4 and all(u.startswith("data:image/png;base64,") for u in data["preload"])


def test_the_results_page_of_an_adaptive_study_as_data(audit, tmp_path):
    """The results page's fits are study_fits' table without its coverage, with their caption, and the levels
    CSV joins the downloads; with only practice answered, the fits section says so."""
    from human_study.export import tidy_frame
    from human_study.psychometric import study_fits
    from human_study.results import analysis_bundle, csv_bytes, results_page

    pages = {}
    for name, n in (("page", None), ("practice", 2)):
        made = adaptive_study(audit, name, tmp_path, observers=1, n_trials=30, n_practice=2)
        store, study = opened(made)
        with store:
            answer(store, study, made.observer_codes[0], threshold=0.25, beta=4.0, rng=np.random.default_rng(11), n=n)
            admin = store.admin(study.id, made.admin_token)
            bundle = analysis_bundle(admin, alpha=0.05, block=4)
            pages[name] = results_page(admin, bundle, alpha=0.05, block=4, base_url=None), bundle["responses"]
    page, responses = pages["page"]
    table, _ = study_fits(responses, study.config)
    pd.testing.assert_frame_equal(page.fits, table.drop(columns=["coverage"]))
    assert page.fits["subj"].tolist() == ["subject-01"] and "psychometric" in page.figures
    assert page.words.fits_caption.startswith("psignifit, 2AFC weibull, per observer and pooled (all)")
    assert "with its 95% credible interval" in page.words.fits_caption and page.words.fits_empty is None
    assert [(d.name, d.file_name) for d in page.downloads] == [
        ("mvh", "page_model-vs-human.csv"), ("full", "page_responses.csv"), ("levels", "page_levels.csv")]
    assert page.downloads[2].make() == csv_bytes(tidy_frame(responses))
    assert page.recruitment_link is None and "link" not in page.observers[0]
    bare, responses = pages["practice"]
    assert len(responses) == 2 and set(responses["kind"]) == {"practice"}
    assert bare.fits is None and bare.words.fits_empty == "No main trials answered yet."
    assert bare.words.fits_caption is None
