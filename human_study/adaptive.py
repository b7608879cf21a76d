"""The adaptive 2AFC design: the stimulus level of a pair is the gap in model difficulty between its two
images, (n_correct of the easier image - n_correct of the harder) / n_models, i.e. the difference of the
models' mean correctness; each observer's next level comes from QUEST+ (Watson 2017, through the `questplus`
package) or a 2-down-1-up staircase (Levitt 1971), and every state is replayed from the stored responses.

Pure functions and a planner that reads the study database; no UI, no statistics of the results (those are in
`psychometric`). The fixed design of meding2022 §3.4 (trivial against impossible) is `design.select_pairs`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sqlalchemy as sa

from human_study.errors import StudyError
from human_study.records import Observer, ScheduledTrial, Study
from human_study.schedule import SIDES, derive_seed, observer_schedule
from human_study.schema import responses, trials

DESIGNS = ("fixed", "adaptive")
PROCEDURES = ("quest", "staircase")
GUESS_RATE = 0.5  # two alternatives
DEFAULT_PAIRS_PER_LEVEL = 40
SLOPE_GRID = (1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0)  # Weibull beta, log2 steps of 1/2
# QUEST+'s prior on beta: log-normal around QUEST's 3.5 (Watson & Pelli 1983), log-sd 0.35, i.e. 95% of it
# between 1.75 and 7; uniform over the threshold grid (log-spaced)
SLOPE_PRIOR_MEDIAN = 3.5
SLOPE_PRIOR_LOG_SD = 0.35
N_THRESHOLD_GRID = 80


# --------------------------------------------------------------------------- the pool of pairs
def gap_levels(n_models: int, n_levels: int) -> np.ndarray:
    """The gaps, in models, that pairs are drawn at: every gap 1..n_models, thinned to at most `n_levels`
    ones spread evenly on a log scale (always including 1 and n_models), as thresholds are judged in
    ratios. A pair's level is its gap / n_models, in (0, 1].

    Returns
    -------
    gaps : ndarray of int, increasing
    """
    if n_models < 1 or n_levels < 2:
        raise StudyError(f"an adaptive study needs at least 1 model and 2 levels, got {n_models} and {n_levels}")
    if n_models <= n_levels:
        return np.arange(1, n_models + 1)
    k = n_levels
    while True:  # rounding merges small gaps: spread more points until n_levels distinct gaps remain
        gaps = np.unique(np.round(np.geomspace(1, n_models, k)).astype(int))
        if len(gaps) >= n_levels:
            return gaps[np.round(np.linspace(0, len(gaps) - 1, n_levels)).astype(int)]
        k += 1


def _pairs_at_gap(by_value: dict, gap: int, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to n (easier, harder) rows whose n_correct differ by `gap`, round robin over the value pairs that
    allow it, no row twice."""
    queues = {v: list(rng.permutation(rows)) for v, rows in by_value.items()}
    combos = [(v, v - gap) for v in sorted(by_value) if v - gap in by_value]
    used: set[int] = set()
    out: list[tuple[int, int]] = []

    def pop(v):
        while queues[v] and queues[v][-1] in used:
            queues[v].pop()
        return queues[v].pop() if queues[v] else None

    while combos and len(out) < n:
        for combo in list(combos):
            if len(out) >= n:
                break
            a, b = pop(combo[0]), pop(combo[1])
            if a is None or b is None:
                for v, row in ((combo[0], a), (combo[1], b)):
                    if row is not None:
                        queues[v].append(row)
                combos.remove(combo)
                continue
            used.update((a, b))
            out.append((int(a), int(b)))
    return out


def select_adaptive_pairs(n_correct, labels, *, n_models: int, config,
                          ) -> list[tuple[str, int, int, int]]:
    """The practice pairs (at the largest gap, with feedback) and the pool of main pairs, binned by gap.

    Each gap of `gap_levels` gets up to `config.pairs_per_level` pairs (default 40), with no image twice
    within a gap; images may recur across gaps, and the planner shows each observer an image at most once
    where the pool allows it. With `match_class` both images of a pair have the same label.

    Returns
    -------
    pairs : list of (kind, pair_index, easier_row, harder_row), practice first; rows index n_correct
    """
    n_correct, labels = np.asarray(n_correct, dtype=int), np.asarray(labels)
    rng = np.random.default_rng([int(config.seed), 2])
    per_level = config.pairs_per_level or DEFAULT_PAIRS_PER_LEVEL
    groups = [np.ones(len(labels), bool)] if not config.match_class else [labels == c for c in np.unique(labels)]
    gaps = gap_levels(n_models, config.n_levels)
    found: dict[int, list] = {}
    for gap in gaps:
        per_group = [_pairs_at_gap(_by_value(n_correct, g), int(gap), per_level, rng) for g in groups]
        merged = [p for rank in range(per_level) for ps in per_group if rank < len(ps) for p in ps[rank:rank + 1]]
        found[int(gap)] = merged[:per_level]
    top = int(gaps[-1])
    practice, main = found[top][: config.n_practice], found[top][config.n_practice:]
    if len(practice) < config.n_practice:
        raise StudyError(f"{config.n_practice} practice trials need as many pairs at the largest gap ({top} of "
                         f"{n_models} models), but the audit has {len(practice)}; use fewer --practice")
    pool = [(gap, p) for gap in gaps[:-1] for p in found[int(gap)]] + [(top, p) for p in main]
    levels_with_pairs = {gap for gap, _ in pool}
    if len(levels_with_pairs) < 2:
        raise StudyError(f"an adaptive study needs pairs at two gaps at least, but this audit ({n_models} models"
                         f"{', class-matched' if config.match_class else ''}) has them at {len(levels_with_pairs)}; "
                         "use an audit with more models or images, or drop --match-class")

    return ([("practice", k, a, b) for k, (a, b) in enumerate(practice)]
            + [("main", k, a, b) for k, (_, (a, b)) in enumerate(pool)])


def _by_value(n_correct: np.ndarray, mask: np.ndarray) -> dict[int, np.ndarray]:
    return {int(v): np.flatnonzero(mask & (n_correct == v)) for v in np.unique(n_correct[mask])}


# --------------------------------------------------------------------------- procedures
def weibull_75(alpha, beta, *, lapse: float):
    """The level at 75% correct of questplus's linear Weibull,
    p(x) = 1 - lapse - (1 - 0.5 - lapse)·exp(-(x/alpha)^beta): x75 = alpha·ln((0.5-lapse)/(0.25-lapse))^(1/beta)."""
    return np.asarray(alpha) * np.log((0.5 - lapse) / (0.25 - lapse)) ** (1.0 / np.asarray(beta))


def weibull_alpha(threshold_75, beta, *, lapse: float):
    """questplus's alpha of the Weibull whose 75%-correct level is `threshold_75` (the inverse of weibull_75)."""
    return np.asarray(threshold_75) / np.log((0.5 - lapse) / (0.25 - lapse)) ** (1.0 / np.asarray(beta))


def slope_prior(slopes, *, median: float = SLOPE_PRIOR_MEDIAN, log_sd: float = SLOPE_PRIOR_LOG_SD) -> np.ndarray:
    """Prior weights of the Weibull slopes: a log-normal density, exp(-(ln(beta/median))^2 / (2·log_sd^2)),
    normalised to sum 1 over `slopes`. Higher is more probable a priori."""
    z = np.log(np.asarray(slopes, dtype=float) / median) / log_sd
    weights = np.exp(-0.5 * z**2)
    return weights / weights.sum()


def min_expected_entropy(posterior, p_correct) -> int:
    """The index of the stimulus whose answer leaves the least expected entropy of the posterior (QUEST+,
    Watson 2017): argmin over s of sum over outcomes r of P(r|s)·H(posterior | s, r), where
    P(r|s)·H = P(r|s)·ln P(r|s) - sum_k j_k·ln j_k with j_k = posterior_k·P(r|s, k). Ties go to the first.

    Parameters
    ----------
    posterior : ndarray of shape (n_params,), summing to 1
    p_correct : ndarray of shape (n_levels, n_params), the probability of a correct answer
    """
    from scipy.special import xlogy

    expected = np.zeros(len(p_correct))
    for likelihood in (p_correct, 1.0 - p_correct):
        joint = likelihood * posterior
        pk = joint.sum(axis=1)
        expected += xlogy(pk, pk) - xlogy(joint, joint).sum(axis=1)
    return int(np.argmin(expected))


def questplus(levels: Sequence[float], *, lapse: float):
    """questplus's QUEST+ of the adaptive design: a linear Weibull over the study's levels, threshold (alpha) on
    N_THRESHOLD_GRID log-spaced values from half the smallest level to 1.25 times the largest, slope (beta) on
    SLOPE_GRID with the log-normal `slope_prior`, guess rate 0.5, lapse fixed; stimuli by least expected entropy."""
    from questplus import QuestPlus

    levels = np.asarray(sorted(levels), dtype=float)
    return QuestPlus(
        stim_domain={"intensity": levels},
        param_domain={"threshold": np.geomspace(levels[0] / 2, levels[-1] * 1.25, N_THRESHOLD_GRID),
                      "slope": np.asarray(SLOPE_GRID), "lower_asymptote": GUESS_RATE, "lapse_rate": float(lapse)},
        outcome_domain={"response": ["Correct", "Incorrect"]},
        prior={"slope": slope_prior(SLOPE_GRID)},
        func="weibull", stim_scale="linear", stim_selection_method="min_entropy",
    )


class QuestProcedure:
    """QUEST+ over threshold and slope of a Weibull (guess rate 0.5, a fixed lapse), on the study's levels.

    questplus (`questplus()`) makes the parameter grid, the prior and the likelihoods; the procedure keeps the
    posterior as a plain array and applies questplus's rules to it (Bayes' update, least expected entropy),
    which makes a replay of 120 answers about ten times faster than with questplus's labelled arrays.

    Parameters
    ----------
    levels : the stimulus levels (gaps) that pairs exist at, in (0, 1]
    lapse : the fixed lapse rate (upper asymptote 1 - lapse)
    """

    name = "quest"

    def __init__(self, levels: Sequence[float], *, lapse: float = 0.02):
        self.levels = np.asarray(sorted(levels), dtype=float)
        self.lapse = float(lapse)
        qp = questplus(self.levels, lapse=self.lapse)
        fixed = ["lower_asymptote", "lapse_rate"]
        prior = qp.prior.squeeze(fixed).transpose("threshold", "slope")
        self.alphas, self.betas = prior["threshold"].to_numpy(), prior["slope"].to_numpy()
        self.posterior = prior.to_numpy().ravel().copy()  # shape (n_alphas * n_betas,), alpha major
        self._p_correct = (qp.likelihoods.sel(response="Correct").squeeze(fixed)
                           .transpose("intensity", "threshold", "slope").to_numpy().reshape(len(self.levels), -1))

    def update(self, level: float, correct: bool) -> None:
        """Bayes' rule with the answer at the study level nearest `level`."""
        p = self._p_correct[int(np.argmin(np.abs(self.levels - level)))]
        posterior = self.posterior * (p if correct else 1.0 - p)
        self.posterior = posterior / posterior.sum()

    def next_level(self) -> float:
        """The level of least expected posterior entropy after the next trial (questplus's `min_entropy`)."""
        return float(self.levels[min_expected_entropy(self.posterior, self._p_correct)])

    def estimate(self, *, coverage: float = 0.95) -> dict:
        """The posterior of the threshold, the level halfway from guessing to the upper asymptote (75% correct
        without lapses, as psignifit's threshold): its median and central `coverage` interval; the slope is
        the posterior's geometric mean of beta."""
        values = weibull_75(self.alphas[:, None], self.betas[None, :], lapse=0.0).ravel()
        order = np.argsort(values)
        cdf = np.cumsum(self.posterior[order]) / self.posterior.sum()
        q = lambda p: float(values[order][min(np.searchsorted(cdf, p), len(cdf) - 1)])  # noqa: E731
        tail = (1 - coverage) / 2
        beta_marginal = self.posterior.reshape(len(self.alphas), len(self.betas)).sum(axis=0)
        return {"threshold": q(0.5), "low": q(tail), "high": q(1 - tail),
                "slope": float(np.exp((np.log(self.betas) * beta_marginal).sum() / beta_marginal.sum()))}


class Staircase:
    """A 2-down-1-up staircase over the study's levels (Levitt 1971): two correct answers in a row make the gap
    one level smaller, one wrong answer one level larger; it converges on 70.7% correct. It starts at the
    largest gap and takes steps of two levels until the first reversal."""

    name = "staircase"

    def __init__(self, levels: Sequence[float], *, lapse: float = 0.02):
        self.levels = np.asarray(sorted(levels), dtype=float)
        self.index = len(self.levels) - 1
        self.run = 0
        self.direction = 0
        self.reversals: list[float] = []

    def update(self, level: float, correct: bool) -> None:
        self.index = int(np.argmin(np.abs(self.levels - level)))
        self.run = self.run + 1 if correct else 0
        move = -1 if correct and self.run >= 2 else (1 if not correct else 0)
        if move == 0:
            return
        self.run = 0
        if self.direction and move != self.direction:
            self.reversals.append(float(self.levels[self.index]))
        self.direction = move
        step = 1 if self.reversals else 2
        self.index = int(np.clip(self.index + move * step, 0, len(self.levels) - 1))

    def next_level(self) -> float:
        return float(self.levels[self.index])

    def estimate(self, *, coverage: float = 0.95) -> dict:
        """The mean of the last (up to) six reversal levels (70.7% correct), without an interval."""
        last = self.reversals[-6:]
        value = float(np.mean(last)) if last else math.nan
        return {"threshold": value, "low": math.nan, "high": math.nan, "slope": math.nan}


def make_procedure(name: str, levels: Sequence[float], *, lapse: float):
    """A fresh procedure by name (PROCEDURES)."""
    if name not in PROCEDURES:
        raise StudyError(f"procedure must be one of {PROCEDURES}, got {name!r}")
    return (QuestProcedure if name == "quest" else Staircase)(levels, lapse=lapse)


# --------------------------------------------------------------------------- replaying an observer
@dataclass(frozen=True)
class PoolTrial:
    """A row of the study's trials as the planner sees it; `level` is the gap in mean correctness."""

    id: int
    kind: str
    pair_index: int
    level: float
    easier_file: str
    harder_file: str
    images: frozenset


@dataclass
class _State:
    procedure: object
    applied: list = field(default_factory=list)  # (trial_id, correct) of the main trials replayed, in order
    used_pairs: set = field(default_factory=set)
    used_images: set = field(default_factory=set)
    next_level: float | None = None
    shown: list = field(default_factory=list)  # the ScheduledTrial of each answered position, in order
    following: tuple | None = None  # (position, ScheduledTrial) of the next trial, until the next answer


def pair_level(easier_n_correct, harder_n_correct, n_models: int) -> float:
    """A pair's stimulus level: (n_correct of the easier image - n_correct of the harder) / n_models."""
    return round((int(easier_n_correct) - int(harder_n_correct)) / int(n_models), 9)


@lru_cache(maxsize=1024)
def main_sides(seed: int, n_trials: int, ordinal: int) -> tuple[str, ...]:
    """The easier image's side at each main position: exactly half left (the odd one left for odd ordinals),
    in an order drawn from the observer's seed."""
    order = sorted(range(n_trials), key=lambda j: derive_seed(seed, "adaptive-side", j))
    n_left = n_trials // 2 + (n_trials % 2 if ordinal % 2 else 0)
    sides = [SIDES[1]] * n_trials
    for rank, j in enumerate(order):
        if rank < n_left:
            sides[j] = SIDES[0]
    return tuple(sides)


def choose_pair(main: Sequence[PoolTrial], level: float, used_pairs: set, used_images: set, *, seed: int,
                index: int) -> PoolTrial:
    """The pair for main trial `index` at `level`: one the observer has not answered, at the nearest level
    that has one, preferring pairs whose images the observer has not seen; ties go by the observer's seed."""
    fresh = [t for t in main if t.id not in used_pairs]
    if not fresh:
        raise StudyError("the study has no pair left for this observer; create it with more --pairs-per-level")
    distance = {v: round(abs(v - level), 9) for v in {t.level for t in fresh}}
    nearest = min(distance.values())
    near = [t for t in fresh if distance[t.level] == nearest]
    tied = [t for t in near if not t.images & used_images] or near  # unseen images first
    return min(tied, key=lambda t: derive_seed(seed, "adaptive-pair", index, t.pair_index))


class AdaptivePlanner:
    """Each observer's trials of an adaptive study, replayed from the stored responses: the procedure sees the
    levels and answers of the main trials in order, so a reload, a new session or a restarted server continues
    exactly where the observer was. States are cached per observer and extended while the stored responses
    still begin with what was replayed; anything else replays from the start. Thread-safe.
    """

    def __init__(self):
        self._lock = threading.RLock()
        self._pools: dict[str, list[PoolTrial]] = {}
        self._by_id: dict[str, dict[int, PoolTrial]] = {}
        self._states: dict[int, _State] = {}

    def pool(self, conn: sa.Connection, study: Study) -> list[PoolTrial]:
        with self._lock:
            if study.id not in self._pools:
                t = trials
                rows = conn.execute(sa.select(t).where(t.c.study_id == study.id).order_by(t.c.id)).mappings().all()
                n_models = int(study.config["n_models"])
                self._pools[study.id] = [
                    PoolTrial(int(r["id"]), r["kind"], int(r["pair_index"]),
                              pair_level(r["trivial_n_correct"], r["impossible_n_correct"], n_models),
                              r["trivial_file"], r["impossible_file"],
                              frozenset({r["trivial_image_id"], r["impossible_image_id"]}))
                    for r in rows
                ]
                self._by_id[study.id] = {t.id: t for t in self._pools[study.id]}
            return self._pools[study.id]

    def schedule(self, conn: sa.Connection, study: Study, observer: Observer) -> list[ScheduledTrial]:
        """The observer's answered trials in order, then their next trial (none after the last one)."""
        answered = conn.execute(
            sa.select(responses.c.position, responses.c.trial_id, responses.c.correct)
            .where(responses.c.observer_id == observer.id).order_by(responses.c.position)
        ).all()
        pool = self.pool(conn, study)
        by_id = self._by_id[study.id]
        with self._lock:
            state = self._replayed(study, observer, pool, answered)
            shown = state.shown
            if [(t.position, t.trial_id) for t in shown] != [(int(p), int(t)) for p, t, _ in answered[: len(shown)]]:
                shown.clear()
            if len(shown) < len(answered):
                practice = self._practice(study, observer, pool) if study.n_practice else []
                shown.extend(practice[pos] if pos < study.n_practice
                             else self._scheduled(study, observer, by_id[tid], pos)
                             for pos, tid, _ in answered[len(shown):])
            out = shown[: len(answered)]
            n = len(answered)
            if n < study.n_total:
                if state.following is None or state.following[0] != n:
                    state.following = (n, self._next(study, observer, pool, state, n))
                out.append(state.following[1])
            return out

    def upcoming(self, conn: sa.Connection, study: Study, observer: Observer) -> list[ScheduledTrial]:
        """The trials that can follow the next one: one for each answer to it (for the browser to preload)."""
        known = self.schedule(conn, study, observer)
        n = len(known) - 1
        if n < 0 or n >= study.n_total - 1 or known[-1].position != n:
            return []
        pool = self.pool(conn, study)
        with self._lock:
            state = self._states[observer.id]
            if n + 1 <= study.n_practice:
                return [self._next(study, observer, pool, state, n + 1)]
            following = []
            nxt = self._by_id[study.id][known[-1].trial_id]
            for correct in (True, False):
                branch = deepcopy(state)
                self._apply(branch, nxt, correct)
                trial = self._next(study, observer, pool, branch, n + 1)
                if all(t.trial_id != trial.trial_id for t in following):
                    following.append(trial)
            return following

    def state(self, conn: sa.Connection, study: Study, observer: Observer) -> _State:
        """The observer's replayed state (its procedure, with `estimate()`), as of the stored responses."""
        self.schedule(conn, study, observer)
        with self._lock:
            return self._states[observer.id]

    # ---- internals (called with the lock held)
    def _replayed(self, study: Study, observer: Observer, pool: list[PoolTrial], answered) -> _State:
        main = [(int(tid), bool(c)) for pos, tid, c in answered if pos >= study.n_practice]
        state = self._states.get(observer.id)
        if state is None or state.applied != main[: len(state.applied)]:
            levels = sorted({t.level for t in pool if t.kind == "main"})
            state = _State(make_procedure(study.config.get("procedure", "quest"), levels,
                                          lapse=float(study.config.get("lapse", 0.02))))
        by_id = self._by_id[study.id]
        for tid, correct in main[len(state.applied):]:
            self._apply(state, by_id[tid], correct)
        self._states[observer.id] = state
        return state

    @staticmethod
    def _apply(state: _State, trial: PoolTrial, correct: bool) -> None:
        state.procedure.update(trial.level, correct)
        state.applied.append((trial.id, bool(correct)))
        state.used_pairs.add(trial.id)
        state.used_images |= {i for i in trial.images if i is not None}
        state.next_level = None
        state.following = None

    def _next(self, study: Study, observer: Observer, pool: list[PoolTrial], state: _State, n: int) -> ScheduledTrial:
        if n < study.n_practice:
            return self._practice(study, observer, pool)[n]
        if state.next_level is None:
            state.next_level = state.procedure.next_level()
        main = [t for t in pool if t.kind == "main"]
        trial = choose_pair(main, state.next_level, state.used_pairs, state.used_images, seed=observer.seed,
                            index=n - study.n_practice)
        return self._scheduled(study, observer, trial, n)

    def _practice(self, study: Study, observer: Observer, pool: list[PoolTrial]) -> list[ScheduledTrial]:
        """The practice trials in the observer's order and sides, as the fixed design orders them."""
        practice = {t.pair_index: t for t in pool if t.kind == "practice"}
        items = observer_schedule(list(practice.values()), observer.seed,
                                  odd_side="left" if observer.ordinal % 2 else "right")
        return [self._scheduled(study, observer, practice[i.pair_index], i.position, side=i.trivial_side)
                for i in items]

    @staticmethod
    def _scheduled(study: Study, observer: Observer, trial: PoolTrial, position: int, *,
                   side: str | None = None) -> ScheduledTrial:
        practice = position < study.n_practice
        if side is None:
            side = main_sides(observer.seed, study.n_trials, observer.ordinal)[position - study.n_practice]
        easier_left = side == SIDES[0]
        harder_side = SIDES[1] if easier_left else SIDES[0]
        return ScheduledTrial(
            trial_id=trial.id, position=position, n_total=study.n_total, kind=trial.kind,
            number=position + 1 if practice else position + 1 - study.n_practice,
            block_size=study.n_practice if practice else study.n_total - study.n_practice,
            left_file=trial.easier_file if easier_left else trial.harder_file,
            right_file=trial.harder_file if easier_left else trial.easier_file,
            trivial_side=side, correct_side=harder_side if study.question == "harder" else side,
        )
