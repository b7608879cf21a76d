"""The schema of a study's settings (`design.DesignConfig`, the options of `ddd-audit study create`): a pydantic
model with the bounds of every field, and the bounds themselves for the CLI. A violation is one line that
names the setting, its option and the values allowed (`audit.schemas.check`). Validation only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.schemas import InputError, check
from human_study.errors import StudyError

MAX_TRIALS = 5000
MAX_PRACTICE = 500
MAX_CATCH = 1000
MAX_TOLERANCE = 1000
MIN_SIZE, MAX_SIZE = 16, 2048
MAX_PHASE_MS = 60_000
MAX_OBSERVERS = 10_000
MAX_ATTENTION_FAILURES = 1000
MAX_SEED = 2**32 - 1  # as the audit's; a study drawn without one gets 32 random bits

#: The option of `ddd-audit study create` that sets each field.
OPTIONS = {
    "n_trials": "--trials", "n_practice": "--practice", "n_catch": "--catch", "tolerance": "--tolerance",
    "match_class": "--match-class", "size": "--size", "question": "--question", "seed": "--seed",
    "break_every": "--break-every", "fixation_ms": "--fixation-ms", "stimulus_ms": "--stimulus-ms",
    "mask": "--mask", "iti_ms": "--iti-ms", "background": "--background", "fullscreen": "--fullscreen",
    "size_deg": "--size-deg", "viewing_distance_cm": "--distance-cm", "completion_code": "--completion-code",
    "redirect_url": "--redirect-url", "attention_policy": "--attention",
    "attention_max_failures": "--attention-max-failures", "open_enrolment": "--open-enrolment",
    "design": "--design", "procedure": "--procedure", "lapse": "--lapse", "n_levels": "--levels",
    "pairs_per_level": "--pairs-per-level", "psychometric": "--psychometric",
}
MAX_LEVELS = 200


class StudySettingsError(StudyError, InputError):
    """A study setting out of its bounds."""


def _int(low: int, high: int, default: int | None = 0, *, nullable: bool = False):
    text = f"an integer from {low:,} to {high:,}"
    return Field(default, ge=low, le=high, description=f"null or {text}" if nullable else text)


def _ms(low: int, *, nullable: bool = False):
    text = f"a duration from {low} to {MAX_PHASE_MS:,} ms"
    return Field(None if nullable else 0, ge=low, le=MAX_PHASE_MS, description=text)


class StudySettings(BaseModel):
    """`human_study.design.DesignConfig`, field by field."""

    model_config = ConfigDict(extra="forbid", strict=True, title="the settings of a study")
    n_trials: int = _int(1, MAX_TRIALS, 149)
    n_practice: int = _int(0, MAX_PRACTICE)
    n_catch: int = _int(0, MAX_CATCH)
    tolerance: int = _int(0, MAX_TOLERANCE)
    match_class: bool = Field(False, description="true or false")
    size: int = Field(224, ge=MIN_SIZE, le=MAX_SIZE, description=f"an integer from {MIN_SIZE} to {MAX_SIZE:,} "
                      "pixels")
    question: Literal["harder", "easier"] = Field("harder", description="one of harder, easier")
    seed: int | None = _int(0, MAX_SEED, None, nullable=True)
    break_every: int | None = _int(0, MAX_TRIALS, None, nullable=True)
    fixation_ms: int = _ms(0)
    stimulus_ms: int | None = _ms(1, nullable=True)
    mask: bool = Field(False, description="true or false")
    iti_ms: int = _ms(0)
    background: str = Field("#808080", pattern=r"^#[0-9a-fA-F]{6}$", description="a colour like #808080 (#rrggbb)")
    fullscreen: bool = Field(False, description="true or false")
    size_deg: float | None = Field(None, ge=0.5, le=60, allow_inf_nan=False,
                                   description="from 0.5 to 60 degrees of visual angle")
    viewing_distance_cm: float = Field(57.0, ge=20, le=300, allow_inf_nan=False, description="from 20 to 300 cm")
    completion_code: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                        description="1-64 letters, digits, - or _")
    redirect_url: str | None = Field(None, pattern=r"^https?://[^\s<>\"']+$", description="an http(s) URL")
    attention_policy: Literal["flag", "end"] = Field("flag", description="one of flag, end")
    attention_max_failures: int = _int(1, MAX_ATTENTION_FAILURES, 1)
    open_enrolment: bool = Field(False, description="true or false")
    design: Literal["fixed", "adaptive"] = Field("fixed", description="one of fixed, adaptive")
    procedure: Literal["quest", "staircase"] = Field("quest", description="one of quest, staircase")
    lapse: float = Field(0.02, ge=0, le=0.2, allow_inf_nan=False, description="a lapse rate from 0 to 0.2")
    n_levels: int = _int(2, MAX_LEVELS, 20)
    pairs_per_level: int | None = _int(1, MAX_TRIALS, None, nullable=True)
    psychometric: Literal["weibull", "logistic"] = Field("weibull", description="one of weibull, logistic")


def check_study_settings(settings: dict) -> None:
    """Raise StudySettingsError, naming the setting and its option, when a study's settings break their
    bounds: "study settings (--background): background must be ...; got 'grey'"."""
    try:
        check(StudySettings, settings, "")
    except InputError as exc:
        option = f" ({OPTIONS[exc.field]})" if exc.field in OPTIONS else ""
        raise StudySettingsError(f"study settings{option}: {exc}", exc.field) from None
    if settings.get("mask") and settings.get("stimulus_ms") is None:
        raise StudySettingsError("study settings (--mask): a mask needs a presentation limit; set stimulus_ms "
                                 "(--stimulus-ms)", "mask")
    if settings.get("design") == "adaptive" and settings.get("n_catch"):
        raise StudySettingsError("study settings (--catch): the adaptive design has no catch trials; drop --catch "
                                 "or use --design fixed", "n_catch")
