"""A study's design: what it asks for (DesignConfig) and its trial pairs, one trivial and one
impossible image each, with practice and catch trials, chosen from an audit's final decisions.

Deterministic given the seed; reads the audit, writes nothing. Orders per observer are in
`schedule`, stimulus images in `stimuli`, the study folder in `folder`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from audit.metrics.difficulty import Split
from human_study.errors import StudyError
from human_study.schedule import SCHEDULE_VERSION
from human_study.settings import check_study_settings
from human_study.stimuli import noise_filename, stimulus_filename

if TYPE_CHECKING:  # pragma: no cover
    from audit.store import AuditResult

QUESTIONS = {
    "harder": "Which of the two images is harder for a neural network to classify correctly?",
    "easier": "Which of the two images is easier for a neural network to classify correctly?",
}
# Shown with the instructions whenever a study has catch trials.
CATCH_TRIAL_NOTE = (
    "Some pairs contain an image of pure noise. A noise image shows no object, so a network "
    "can never classify it correctly: it is always the harder image of its pair."
)
NOISE_CLASS = "noise"

#: Trial sequences by name: fixation, stimulus limit (None = until the answer), mask, blank ITI.
#: "meding2022" is the paper's self-paced trial (§2, §3.4): no fixation, no limit, no mask, no gap.
SEQUENCE_PRESETS = {
    "meding2022": {"fixation_ms": 0, "stimulus_ms": None, "mask": False, "iti_ms": 0},
    "lab": {"fixation_ms": 500, "stimulus_ms": None, "mask": False, "iti_ms": 500},
    "masked": {"fixation_ms": 300, "stimulus_ms": 200, "mask": True, "iti_ms": 500},
}
ATTENTION_POLICIES = ("flag", "end")


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DesignConfig:
    """What a study asks for.

    Parameters
    ----------
    n_trials : number of main trials (pairs) per observer; meding2022 used 149.
    n_practice : practice trials with feedback, shown first, built from images not used elsewhere.
    n_catch : catch trials mixed into the main trials: a trivial image paired with a Gaussian-noise
        image (mean 128, sd 48), which no network can classify, so the noise image is always the
        harder one. They check attention; analysis reports them apart from the main trials.
    tolerance : t in the count definition: trivial when n_correct >= n_models - t, impossible when
        n_correct <= t. 0 (every model right / every model wrong) is the paper's strict choice.
    match_class : pair each trivial image with an impossible image of the same class.
    size : stimulus side in pixels (square); images are not normalised.
    question : "harder" (meding2022 §2: pick the image that is harder for a network) or "easier".
    seed : seed of the study; pair selection, noise images and observer seeds derive from it.
    break_every : offer a break after this many main trials; 0 = no breaks; None = blocks of at most 50.
    fixation_ms, stimulus_ms, mask, iti_ms : the trial sequence (SEQUENCE_PRESETS): a fixation
        cross, the pair (for at most `stimulus_ms`, then a noise mask when `mask`; None = until
        the answer), the answer, then a blank inter-trial interval. The browser times each phase.
    background : page colour behind the stimuli ("#rrggbb"); mid-grey by default.
    fullscreen : ask observers to switch to full screen before the first trial.
    size_deg : stimulus side in degrees of visual angle; observers then calibrate their screen
        (a credit card on screen, and their viewing distance) and `size` is ignored.
    viewing_distance_cm : the viewing distance proposed to observers at calibration.
    completion_code, redirect_url : shown on the debrief for a recruiting service (Prolific-style).
    attention_policy : what failed catch trials do: "flag" the observer in the analysis, or "end"
        the experiment after `attention_max_failures` failures.
    open_enrolment : a recruiting service's link without an observer code gets each participant
        id its own observer (links.recruitment_link).
    design : "fixed" (meding2022 §3.4: trivial against impossible) or "adaptive" (`adaptive`: the level is
        the gap in the models' mean correctness between the two images, chosen per observer).
    procedure, lapse : the adaptive design's procedure, "quest" (QUEST+ over threshold and slope, guess rate
        0.5, this fixed lapse rate) or "staircase" (2-down-1-up).
    n_levels, pairs_per_level : the adaptive design's pool: at most this many gaps, and pairs per gap
        (default 40).
    psychometric : the psychometric function fitted to an adaptive study ("weibull" or "logistic").
    """

    n_trials: int = 149
    n_practice: int = 5
    n_catch: int = 0
    tolerance: int = 0
    match_class: bool = False
    size: int = 224
    question: str = "harder"
    seed: int | None = None
    break_every: int | None = None
    fixation_ms: int = 0
    stimulus_ms: int | None = None
    mask: bool = False
    iti_ms: int = 0
    background: str = "#808080"
    fullscreen: bool = False
    size_deg: float | None = None
    viewing_distance_cm: float = 57.0
    completion_code: str | None = None
    redirect_url: str | None = None
    attention_policy: str = "flag"
    attention_max_failures: int = 1
    open_enrolment: bool = False
    design: str = "fixed"
    procedure: str = "quest"
    lapse: float = 0.02
    n_levels: int = 20
    pairs_per_level: int | None = None
    psychometric: str = "weibull"

    def validate(self) -> None:
        """Raise StudySettingsError (a StudyError), naming the setting and its option, unless every field is
        within its bounds (`human_study.settings.StudySettings`)."""
        check_study_settings(asdict(self))

    @property
    def n_total(self) -> int:
        return self.n_practice + self.n_trials + self.n_catch


# --------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class PairSpec:
    """One trial of a study: a trivial and an impossible image (a noise image in catch trials)."""

    kind: str
    pair_index: int
    trivial_image_id: int
    trivial_label: int
    trivial_class: str
    trivial_n_correct: int
    impossible_image_id: int | None
    impossible_label: int | None
    impossible_class: str
    impossible_n_correct: int | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.pair_index)

    @property
    def trivial_file(self) -> str:
        return stimulus_filename(self.trivial_image_id)

    @property
    def impossible_file(self) -> str:
        if self.impossible_image_id is None:
            return noise_filename(self.pair_index)
        return stimulus_filename(self.impossible_image_id)


@dataclass(frozen=True)
class StudyDesign:
    """A study's trial list, ready to persist. `config.seed` is always set here."""

    config: DesignConfig
    model_names: tuple[str, ...]
    n_trivial: int
    n_impossible: int
    pairs: tuple[PairSpec, ...] = field(repr=False)

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    def of_kind(self, kind: str) -> list[PairSpec]:
        return [p for p in self.pairs if p.kind == kind]

    def to_json(self) -> dict:
        """The study's config as stored in the database and in study.json."""
        return {
            **asdict(self.config),
            "n_models": self.n_models,
            "model_names": list(self.model_names),
            "n_trivial_available": self.n_trivial,
            "n_impossible_available": self.n_impossible,
            "schedule": SCHEDULE_VERSION,
        }


def count_correct(correct: np.ndarray) -> np.ndarray:
    """Number of models that classify each image correctly.

    Parameters
    ----------
    correct : ndarray of bool, shape (n_images, n_models)

    Returns
    -------
    n_correct : ndarray of int, shape (n_images,), in [0, n_models]
    """
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise StudyError(f"correct must have shape (n_images, n_models), got shape {correct.shape}")
    return correct.astype(bool).sum(axis=1)


def difficulty_masks(n_correct: np.ndarray, n_models: int, *, tolerance: int = 0):
    """Trivial and impossible masks: `audit.metrics.difficulty.split_masks`, with study errors.

    Returns
    -------
    trivial, impossible : ndarray of bool, shape (n_images,)
    """
    if n_models < 1:
        raise StudyError("the audit has no finished model; a study needs at least one")
    try:
        split = Split.from_counts(n_correct, n_models, tolerance)
    except ValueError as err:
        raise StudyError(str(err)) from None
    if split.clipped:  # a study asks for its tolerance exactly: observers' trials are built on it
        raise StudyError(
            f"tolerance {tolerance} is too large for {n_models} models: an image would be both "
            f"trivial and impossible; use a tolerance below {n_models / 2:g}"
        )
    return split.mask("trivial"), split.mask("impossible")


def _spread(capacity: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Split n pairs over classes as evenly as their capacities allow (round robin)."""
    counts = np.zeros_like(capacity)
    remaining = n
    while remaining > 0:
        open_ = np.flatnonzero(counts < capacity)
        if len(open_) == 0:  # callers check the total first
            raise StudyError("not enough class-matched pairs")
        if remaining >= len(open_):
            counts[open_] += 1
            remaining -= len(open_)
        else:
            counts[rng.choice(open_, size=remaining, replace=False)] += 1
            remaining = 0
    return counts


def _shortage_message(config: DesignConfig, n_models: int, n_triv: int, n_imp: int, what: str) -> str:
    need_pairs = config.n_trials + config.n_practice
    catch = f" plus {config.n_catch} more trivial images for catch trials" if config.n_catch else ""
    return (
        f"the audit has {n_triv} trivial and {n_imp} impossible images at tolerance {config.tolerance} "
        f"({n_models} models), but {config.n_trials} trials + {config.n_practice} practice trials need "
        f"{need_pairs} {what}{catch}; use fewer --trials or --practice, a larger --tolerance"
        f"{', drop --match-class' if config.match_class else ''}, or an audit with more images"
    )


def select_pairs(
    n_correct: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    n_models: int,
    config: DesignConfig,
    image_ids: np.ndarray | None = None,
) -> tuple[list[PairSpec], int, int]:
    """Pick main, practice and catch pairs; no image appears in two trials.

    Parameters
    ----------
    n_correct : ndarray of int, shape (n_images,)
    labels : ndarray of int, shape (n_images,)
    class_names : sequence of str, length n_classes
    image_ids : ndarray of int, shape (n_images,), default 0..n_images-1

    Returns
    -------
    pairs, n_trivial, n_impossible : the pairs and how many images of each category exist.
    """
    config.validate()
    if config.seed is None:
        raise StudyError("select_pairs needs config.seed; design_study sets it")
    n_correct = np.asarray(n_correct)
    labels = np.asarray(labels)
    if n_correct.shape != labels.shape:
        raise StudyError(f"n_correct has shape {n_correct.shape} but labels has shape {labels.shape}")
    ids = np.arange(len(labels)) if image_ids is None else np.asarray(image_ids)
    trivial, impossible = difficulty_masks(n_correct, n_models, tolerance=config.tolerance)
    n_triv, n_imp = int(trivial.sum()), int(impossible.sum())
    rng = np.random.default_rng([int(config.seed), 1])
    need_pairs = config.n_trials + config.n_practice

    if not config.match_class:
        if n_triv < need_pairs + config.n_catch or n_imp < need_pairs:
            raise StudyError(_shortage_message(config, n_models, n_triv, n_imp, "of each"))
        t_rows = rng.permutation(np.flatnonzero(trivial))
        i_rows = rng.permutation(np.flatnonzero(impossible))
        main = list(zip(t_rows[: config.n_trials], i_rows[: config.n_trials], strict=True))
        practice = list(
            zip(t_rows[config.n_trials : need_pairs], i_rows[config.n_trials : need_pairs], strict=True)
        )
        leftover_trivial = t_rows[need_pairs:]
    else:
        classes = np.unique(labels[trivial | impossible])
        t_by = [rng.permutation(np.flatnonzero(trivial & (labels == c))) for c in classes]
        i_by = [rng.permutation(np.flatnonzero(impossible & (labels == c))) for c in classes]
        capacity = np.array([min(len(t), len(i)) for t, i in zip(t_by, i_by, strict=True)], dtype=int)
        if capacity.sum() < need_pairs:
            per_class = ", ".join(
                f"{_class_name(class_names, c)} {k}" for c, k in zip(classes, capacity, strict=True) if k
            )
            raise StudyError(
                _shortage_message(config, n_models, n_triv, n_imp, "class-matched pairs")
                + f" (only {int(capacity.sum())} class-matched pairs exist: {per_class or 'none'})"
            )
        main_counts = _spread(capacity, config.n_trials, rng)
        practice_counts = _spread(capacity - main_counts, config.n_practice, rng)
        main, practice, used = [], [], []
        for t, i, m, p in zip(t_by, i_by, main_counts, practice_counts, strict=True):
            main += list(zip(t[:m], i[:m], strict=True))
            practice += list(zip(t[m : m + p], i[m : m + p], strict=True))
            used += list(t[: m + p])
        main = [main[k] for k in rng.permutation(len(main))]
        practice = [practice[k] for k in rng.permutation(len(practice))]
        leftover_trivial = rng.permutation(np.setdiff1d(np.flatnonzero(trivial), np.asarray(used, dtype=int)))
    if len(leftover_trivial) < config.n_catch:
        raise StudyError(
            f"{config.n_catch} catch trials need {config.n_catch} trivial images beyond the "
            f"{need_pairs} used by trials and practice, but only {len(leftover_trivial)} are left; "
            "use fewer --catch or fewer --trials"
        )

    def spec(kind, index, t, i):
        return PairSpec(
            kind=kind,
            pair_index=index,
            trivial_image_id=int(ids[t]),
            trivial_label=int(labels[t]),
            trivial_class=_class_name(class_names, labels[t]),
            trivial_n_correct=int(n_correct[t]),
            impossible_image_id=None if i is None else int(ids[i]),
            impossible_label=None if i is None else int(labels[i]),
            impossible_class=NOISE_CLASS if i is None else _class_name(class_names, labels[i]),
            impossible_n_correct=None if i is None else int(n_correct[i]),
        )

    pairs = [spec("practice", k, t, i) for k, (t, i) in enumerate(practice)]
    pairs += [spec("main", k, t, i) for k, (t, i) in enumerate(main)]
    pairs += [spec("catch", k, t, None) for k, t in enumerate(leftover_trivial[: config.n_catch])]
    return pairs, n_triv, n_imp


def _class_name(class_names: Sequence[str], label) -> str:
    label = int(label)
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


def audit_problems(audit: AuditResult, tolerance: int) -> list[str]:
    """Why an audit's split would make a meaningless study: an audit that is not complete, or fewer models
    than the stability measure needs (audit.metrics.stability.min_models). Empty when it is fine."""
    from audit.metrics.stability import min_models

    problems = []
    if not audit.is_complete:
        problems.append(f"the audit is {audit.state} ({audit.state_text})")
    need = min_models(tolerance)
    if audit.n_models < need:
        problems.append(f"it has {audit.n_models} {'model' if audit.n_models == 1 else 'models'}, and a split at "
                        f"tolerance {tolerance} needs at least {need} to say anything about difficulty")
    return problems


def design_study(audit: AuditResult, config: DesignConfig | None = None, *, models=None) -> StudyDesign:
    """Build a study's trial list from an audit (final-epoch decisions of `models`, default all)."""
    config = config or DesignConfig()
    config.validate()
    if config.seed is None:
        config = replace(config, seed=secrets.randbits(32))
    model_names = list(models) if models is not None else list(audit.model_names)
    if not model_names:
        raise StudyError(f"the audit at {audit.path} has no finished model yet; wait for its jobs to finish")
    correct = audit.correct(model_names)
    n_correct = count_correct(correct)
    images = audit.images
    if config.design == "adaptive":
        from human_study.adaptive import select_adaptive_pairs

        trivial, impossible = difficulty_masks(n_correct, len(model_names), tolerance=config.tolerance)
        labels, ids, names = images["label"].to_numpy(), images["image_id"].to_numpy(), audit.class_names
        pairs = [  # "trivial_*" is the easier image of the pair, "impossible_*" the harder one
            PairSpec(kind, k, int(ids[a]), int(labels[a]), _class_name(names, labels[a]), int(n_correct[a]),
                     int(ids[b]), int(labels[b]), _class_name(names, labels[b]), int(n_correct[b]))
            for kind, k, a, b in select_adaptive_pairs(n_correct, labels, n_models=len(model_names), config=config)
        ]
        return StudyDesign(config, tuple(model_names), int(trivial.sum()), int(impossible.sum()), tuple(pairs))
    pairs, n_triv, n_imp = select_pairs(
        n_correct,
        images["label"].to_numpy(),
        audit.class_names,
        n_models=len(model_names),
        config=config,
        image_ids=images["image_id"].to_numpy(),
    )
    return StudyDesign(config, tuple(model_names), n_triv, n_imp, tuple(pairs))


def study_setting(study, name: str):
    """A setting of a study's config; DesignConfig's default for a study made before it existed."""
    if name in study.config:
        return study.config[name]
    return DesignConfig.__dataclass_fields__[name].default
