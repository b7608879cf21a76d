"""What an observer's visit to the experiment page does, without Streamlit: the screen to show
next, answers from the browser, committing them, and what each screen says and shows.

The page (audit_app/experiment.py) lays out widgets and calls this module. The database decides
which trial comes next; nothing here shows an observer any analysis or another observer's data.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from human_study.design import CATCH_TRIAL_NOTE, QUESTIONS, study_setting
from human_study.errors import StudyError, is_database_error
from human_study.records import MAX_RT_MS, Calibration, Progress, Recorded, ScheduledTrial, Study
from human_study.schedule import SIDES

if TYPE_CHECKING:  # pragma: no cover
    from human_study.visit import Store

STUDY_UNAVAILABLE = "this study cannot be opened right now; please tell the researcher"


# --------------------------------------------------------------------------- one observer's visit
DEFAULT_BLOCK = 50  # main trials between breaks when the study sets no `break_every`


def break_every(study: Study) -> int:
    """Main trials between two breaks: the study's `break_every`, else blocks of at most 50.

    0 means no breaks. 149 trials (meding2022) give blocks of 50, 50 and 49.
    """
    value = study.config.get("break_every")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    n = study.n_trials + study.n_catch
    return math.ceil(n / math.ceil(n / DEFAULT_BLOCK)) if n > DEFAULT_BLOCK else 0


@dataclass
class Visit:
    """What one page load (a Streamlit session) knows beyond the database.

    The database decides which trial comes next; this only remembers the screens in between
    (consent, instructions, feedback, breaks) and when each trial was first shown.
    """

    study_id: str
    code: str
    observer_id: int
    session_id: int
    n_answered_at_start: int
    consented: bool = False
    instructed: bool = False
    test_started: bool = False
    resumed: bool = False
    break_done_at: int = -1
    feedback: dict | None = None
    notice: str | None = None
    attempt: int = 0
    shown_at: dict[int, datetime] = field(default_factory=dict)
    calibration: Calibration | None = None
    needs_calibration: bool = False
    refresh_ms: float | None = None  # the display's refresh interval stored for this session


SCREENS = (
    "consent",
    "calibration",
    "instructions",
    "trial",
    "feedback",
    "practice_done",
    "break",
    "welcome_back",
    "debrief",
)


def next_screen(progress: Progress, visit: Visit, *, every: int) -> str:
    """The screen to show now, one of SCREENS."""
    if progress.finished:
        return "debrief"
    if visit.feedback is not None:
        return "feedback"
    if progress.n_answered == 0 and not visit.consented:
        return "consent"
    if visit.needs_calibration and visit.calibration is None:
        return "calibration"
    if progress.n_answered == 0:
        return "trial" if visit.instructed else "instructions"
    if (
        progress.n_practice > 0
        and not progress.in_practice
        and progress.n_test_answered == 0
        and not visit.test_started
    ):
        return "practice_done"
    done = progress.n_test_answered
    if every > 0 and done > 0 and done % every == 0 and visit.break_done_at != done:
        return "break"
    if visit.n_answered_at_start > 0 and not visit.resumed:
        return "welcome_back"
    return "trial"


def start_visit(
    store: Store, study: Study, code: str, *, user_agent: str | None = None, recruitment: dict | None = None
) -> Visit:
    """A new session in the database (one per page load) and the visit that goes with it.

    Consent given before (in an earlier session) and the last calibration carry over: a reload
    before the first trial does not ask for them again.
    """
    observer = store.get_observer(study.id, code)
    session = store.start_session(observer.id, user_agent=user_agent, recruitment=recruitment)
    return Visit(
        study.id,
        observer.code,
        observer.id,
        session.id,
        store.progress(observer.id).n_answered,
        consented=observer.consented_at is not None,
        calibration=store.calibration(session.id),
        needs_calibration=study_setting(study, "size_deg") is not None,
    )


def give_consent(store: Store, visit: Visit) -> None:
    """The observer clicked "I agree": stored in the database, so a reload keeps it."""
    store.record_consent(visit.observer_id)
    visit.consented = True


# --------------------------------------------------------------------------- display calibration
CARD_WIDTH_MM = 85.60  # ISO/IEC 7810 ID-1 (credit card): 85.60 mm x 53.98 mm
CARD_HEIGHT_MM = 53.98


def calibration_from_card(card_width_px: float, viewing_distance_cm: float) -> Calibration:
    """The calibration from the width (CSS px) at which an on-screen card matched a real credit
    card, and the viewing distance, as jsPsych's virtual-chinrest does (Li et al. 2020)."""
    if not 100 <= card_width_px <= 4000:
        raise StudyError(f"the card must be 100 to 4000 px wide, got {card_width_px!r}")
    return Calibration(px_per_mm=card_width_px / CARD_WIDTH_MM, viewing_distance_mm=10.0 * viewing_distance_cm)


def stimulus_px(size_deg: float, calibration: Calibration) -> int:
    """The side in CSS pixels of a stimulus that spans `size_deg` degrees of visual angle:
    2·d·tan(θ/2)·(px per mm), rounded to whole pixels (57.3 cm away, 1 cm is about 1 degree)."""
    if not 0 < size_deg < 180:
        raise StudyError(f"a visual angle must be between 0 and 180 degrees, got {size_deg!r}")
    mm = 2.0 * calibration.viewing_distance_mm * math.tan(math.radians(size_deg) / 2.0)
    return int(round(mm * calibration.px_per_mm))


def stimulus_size(study: Study, visit: Visit) -> int:
    """The stimulus side in CSS px for this visit: from the visual angle and the session's
    calibration when the study sets `size_deg`, else the study's size in pixels."""
    size_deg = study_setting(study, "size_deg")
    if size_deg is None or visit.calibration is None:
        return int(study.size)
    return stimulus_px(float(size_deg), visit.calibration)


def mark_shown(visit: Visit, trial: ScheduledTrial, *, now: datetime | None = None) -> None:
    """Remember when a trial was first put on screen (server clock, for the server RT)."""
    visit.shown_at.setdefault(trial.trial_id, now or datetime.now(timezone.utc))


def client_phases(payload: object) -> dict | None:
    """The phase durations (ms) in the browser's message, untrusted: kept only where they are
    finite, non-negative numbers of a known phase (the store checks them again)."""
    from human_study.visit import check_phases

    phases = payload.get("phases") if isinstance(payload, Mapping) else None
    try:
        return check_phases(dict(phases)) if isinstance(phases, Mapping) else None
    except StudyError:
        return None


def client_refresh(payload: object) -> float | None:
    """The display's refresh interval (ms) in the browser's message, measured from requestAnimationFrame
    (untrusted: a number from 2 to 100 ms, else None)."""
    value = payload.get("refresh_ms") if isinstance(payload, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if 2 <= value <= 100 else None


def client_response(payload: object, trial_id: int) -> tuple[str, float | None] | None:
    """(choice, rt_ms) from the browser's message about `trial_id`, or None if it is not one.

    The message is untrusted: a wrong trial, a bad choice gives None; a bad time gives rt None.
    """
    if not isinstance(payload, Mapping):
        return None
    tid = payload.get("trial_id")
    if isinstance(tid, bool) or not isinstance(tid, int) or tid != trial_id:
        return None
    choice = payload.get("choice")
    if choice not in SIDES:
        return None
    rt = payload.get("rt_ms")
    if isinstance(rt, bool) or not isinstance(rt, int | float) or not math.isfinite(rt):
        return choice, None
    return choice, (float(rt) if 0 <= rt <= MAX_RT_MS else None)


DATABASE_DOWN = "The study's database cannot be reached right now. Please reload this page in a minute."
SAVE_FAILED = "Your answer could not be saved. Please answer this trial again."
NOT_ON_SCREEN = "That answer was not for the trial on screen, so it was not recorded."


def submit_answer(
    store: Store,
    visit: Visit,
    trial_id: int,
    choice: str,
    *,
    rt_ms: float | None = None,
    phases: dict | None = None,
    refresh_ms: float | None = None,
) -> Recorded | None:
    """Commit one answer (idempotent) and set up the feedback of a practice trial; a new measure of the
    display's refresh interval (`refresh_ms`, client_refresh) is stored with the session.

    With `rt_ms` (measured in the browser) the RT source is "client"; without it the store takes
    the server time since the trial was first shown. Returns None, with `visit.notice` set, when
    nothing was stored; the same trial is then shown again, because the next trial always comes
    from the database.
    """
    try:
        recorded = store.record_response(
            visit.session_id,
            trial_id,
            choice,
            rt_ms=rt_ms,
            rt_source="client" if rt_ms is not None else None,
            shown_at=visit.shown_at.get(trial_id),
            phases=phases,
        )
    except StudyError:
        visit.notice = NOT_ON_SCREEN
        return None
    except Exception as err:
        if not is_database_error(err):
            raise
        visit.notice = SAVE_FAILED
        visit.attempt += 1
        return None
    visit.notice = None
    if refresh_ms is not None and (visit.refresh_ms is None or abs(visit.refresh_ms - refresh_ms) > 0.05):
        visit.refresh_ms = store.set_refresh_interval(visit.session_id, refresh_ms)
    scheduled = {t.trial_id: t for t in store.schedule(visit.observer_id)}[recorded.trial_id]
    if recorded.created and scheduled.feedback:
        visit.feedback = {
            "trial_id": recorded.trial_id,
            "choice": recorded.choice,
            "correct": recorded.correct,
            "correct_side": recorded.correct_side,
            "left_file": scheduled.left_file,
            "right_file": scheduled.right_file,
            "last_practice": scheduled.number == scheduled.block_size,
        }
    return recorded


# --------------------------------------------------------------------------- texts
CONSENT_FILE = "consent.md"
DEBRIEF_FILE = "debrief.md"

DEFAULT_CONSENT = """\
### Welcome

In this experiment you will see pairs of images and decide, for each pair, which image a
neural network (a computer program that names what an image shows) finds {word} to classify.
It takes about {duration}: {n_total} pairs{breaks}.

- Taking part is voluntary. You can stop at any time by closing this window; if you come back
  with the same link, you continue where you stopped.
- We store your answers and response times under a code, not your name. The researchers
  analyse them only together with other observers' answers.
- There are no right answers that you need to know in advance; go with your impression.

If you agree to take part, click **I agree** below.
"""

DEFAULT_DEBRIEF = """\
### Thank you, you are done!

Every image pair you saw held one image that {all_right} neural networks in our test classified
correctly and one that {all_wrong} of them got wrong. We want to know whether people can tell
which is which, i.e. whether humans and networks share a sense of what makes an image hard.

Your answers are saved. You can close this window now.
"""


def _folder_text(study: Study, name: str) -> str | None:
    path = Path(study.folder) / name
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except OSError:
        return None


def consent_text(study: Study, *, every: int = 0) -> str:
    """The study folder's consent.md, or a generic consent text (about 6 s per trial)."""
    custom = _folder_text(study, CONSENT_FILE)
    if custom is not None:
        return custom
    minutes = max(1, round(study.n_total * 6 / 60))
    duration = f"{minutes} minute{'s' if minutes > 1 else ''}"
    breaks = ", with short breaks" if 0 < every < study.n_trials + study.n_catch else ""
    word = "easier" if study.question == "easier" else "harder"
    return DEFAULT_CONSENT.format(duration=duration, n_total=study.n_total, breaks=breaks, word=word)


ENDED_TEXT = """\
### Thank you

The experiment has ended early, because several of the check trials (a picture against pure
noise) were answered as if the noise were the easier image. Your answers so far are saved.
You can close this window now.
"""


def completion_text(study: Study) -> str | None:
    """The completion code for a recruiting service, as the debrief shows it, or None."""
    code = study_setting(study, "completion_code")
    if not code:
        return None
    return f"Your completion code: **{code}**"


def debrief_text(study: Study, *, ended: bool = False) -> str:
    """The study folder's debrief.md, or a generic debrief (true to the study's tolerance);
    `ended`: the attention-check policy ended the experiment early."""
    if ended:
        return ENDED_TEXT
    custom = _folder_text(study, DEBRIEF_FILE)
    if custom is not None:
        return custom
    tolerance = study.config.get("tolerance", 0)
    if tolerance:
        nearly = f"**all but at most {tolerance}**"
        return DEFAULT_DEBRIEF.format(all_right=nearly, all_wrong=nearly)
    return DEFAULT_DEBRIEF.format(all_right="**all**", all_wrong="**all**")


def question_text(study: Study) -> str:
    return QUESTIONS.get(study.question, QUESTIONS["harder"])


def instructions_text(study: Study, *, every: int) -> str:
    """The instructions: the question, how to answer, practice, catch trials and breaks."""
    lines = [
        "### Instructions",
        f"On every trial you see two images side by side. **{question_text(study)}**",
        "",
        "Answer with the **← Left** and **→ Right** arrow keys on your keyboard, or click the "
        "button under the image you choose. Take your time, but do not think too long: your first "
        "impression is what we are after.",
        "",
    ]
    if study.n_practice:
        lines.append(
            f"You start with {study.n_practice} practice trials. After each practice trial we tell "
            "you whether your answer was right. In the main part there is no feedback."
        )
    if study.n_catch:
        lines += ["", CATCH_TRIAL_NOTE]
    main = study.n_trials + study.n_catch
    lines += ["", f"The main part has {main} trials."]
    if every:
        lines[-1] += f" You get a short break every {every} trials."
    return "\n".join(lines)


def progress_label(trial: ScheduledTrial) -> tuple[float, str]:
    """(fraction done, text) for the progress bar of a trial."""
    what = "Practice trial" if trial.kind == "practice" else "Trial"
    return (trial.number - 1) / max(1, trial.block_size), f"{what} {trial.number} of {trial.block_size}"


def feedback_text(feedback: Mapping, study: Study) -> tuple[bool, str]:
    """(correct, message) shown after a practice trial."""
    side = feedback["correct_side"]
    word = "harder" if study.question == "harder" else "easier"
    if feedback["correct"]:
        return True, f"Correct! The {side} image is the {word} one for the networks."
    return False, f"Not quite: the {side} image is the {word} one for the networks."


def welcome_back_text(progress: Progress) -> str:
    """Where a returning observer stands: main trials of the main part, practice apart."""
    if progress.in_practice:
        return (
            f"You have done {progress.n_practice_answered} of {progress.n_practice} practice trials; "
            "you continue where you stopped."
        )
    return (
        f"You have answered {progress.n_test_answered} of {progress.n_test} trials; you continue "
        "where you stopped."
    )


# --------------------------------------------------------------------------- stimuli
def stage_width(study: Study, size: int | None = None) -> int:
    """Width in px of the experiment's column: two stimuli side by side, at least 720 for text."""
    return max(720, 2 * int(study.size if size is None else size) + 160)


def sequence(study: Study) -> dict:
    """The study's trial sequence for the browser: fixation_ms, stimulus_ms (None = until the
    answer), mask, iti_ms (DesignConfig; a study made before them gets the meding2022 preset)."""
    return {name: study_setting(study, name) for name in ("fixation_ms", "stimulus_ms", "mask", "iti_ms")}


def trial_data(store: Store, study: Study, trial: ScheduledTrial, *, size: int, attempt: int = 0,
               upcoming: Sequence[ScheduledTrial] = ()) -> dict:
    """Everything the browser needs to run one trial on its own: the two images (inlined), their
    size in CSS px, the header, the question, the sequence, the background and full screen, and the
    images of the `upcoming` trials (Store.upcoming_trials) to decode ahead (`preload`)."""
    fraction, header = progress_label(trial)
    images = {}
    for side, filename in (("left", trial.left_file), ("right", trial.right_file)):
        try:
            images[side] = _data_uri(store.image_path(study, filename))
        except OSError:
            raise StudyError(
                f"an image of this study ({filename}) cannot be read; please tell the researcher"
            ) from None
    return {
        "trial_id": int(trial.trial_id),
        "attempt": int(attempt),
        "header": header,
        "fraction": fraction,
        "question": question_text(study),
        "left": images["left"],
        "right": images["right"],
        "size": int(size),
        "sequence": sequence(study),
        "background": study_setting(study, "background"),
        "fullscreen": bool(study_setting(study, "fullscreen")),
        "preload": _preload(store, study, upcoming, shown={trial.left_file, trial.right_file}),
    }


def _preload(store: Store, study: Study, upcoming: Sequence[ScheduledTrial], *, shown: set) -> list[str]:
    files = [f for t in upcoming for f in (t.left_file, t.right_file) if f not in shown]
    out = []
    for filename in dict.fromkeys(files):
        try:
            out.append(_data_uri(store.image_path(study, filename)))
        except (OSError, StudyError):  # a missing image is reported when its own trial comes
            continue
    return out


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def stimulus_html(
    store: Store,
    study: Study,
    filename: str,
    *,
    side: str,
    trial_id: int,
    highlight: bool | None = None,
    size: int | None = None,
) -> str:
    """An <img> of one stimulus, inlined, at `size` CSS px (default the study's size), tagged
    with its trial and side (the practice feedback shows the pair this way).

    highlight : True outlines the image in green (the right answer, in feedback), False leaves
        room for the outline, None shows the image plain.
    """
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    try:
        uri = _data_uri(store.image_path(study, filename))  # only the study's own files
    except OSError:
        raise StudyError(
            f"an image of this study ({filename}) cannot be read; please tell the researcher"
        ) from None
    size = int(study.size if size is None else size)
    colour = {True: "#2e7d32", False: "transparent", None: None}[highlight]
    outline = "" if colour is None else f"outline:4px solid {colour};outline-offset:2px;"
    return (
        f'<div style="display:flex;justify-content:center;padding:6px 0;">'
        f'<img src="{uri}" width="{size}" height="{size}" alt="{html.escape(side)} image" draggable="false" '
        f'data-xp-trial="{int(trial_id)}" data-xp-side="{side}" '
        f'style="width:{size}px;height:{size}px;max-width:none;{outline}user-select:none;"></div>'
    )


# --------------------------------------------------------------------------- the page around the trials
#: Streamlit's own chrome that observers must not see: its header with the menu, the toolbar,
#: the deploy button, the status widget and the footer.
CHROME_SELECTORS = (
    'header[data-testid="stHeader"]',
    '[data-testid="stToolbar"]',
    '[data-testid="stMainMenu"]',
    '[data-testid="stAppDeployButton"]',
    '[data-testid="stStatusWidget"]',
    '[data-testid="stDecoration"]',
    "footer",
)


def page_css(study: Study) -> str:
    """CSS of the experiment page: the study's background colour on the whole page, and no
    Streamlit chrome."""
    background = study_setting(study, "background")
    return (
        f"{', '.join(CHROME_SELECTORS)} {{ display: none !important; }}\n"
        f'.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] {{ background: {background} !important; }}\n'
        '[data-testid="stMainBlockContainer"] { padding-top: 1.5rem; }\n'
    )


def calibration_card_html(card_width_px: int) -> str:
    """An on-screen credit card of `card_width_px` CSS px (ISO/IEC 7810 ID-1 proportions)."""
    width = int(card_width_px)
    height = round(width * CARD_HEIGHT_MM / CARD_WIDTH_MM)
    return (
        f'<div data-xp-card="{width}" style="width:{width}px;height:{height}px;border-radius:{round(width * 0.037)}px;'
        'background:linear-gradient(135deg,#3b6ea8,#6aa0d8);border:1px solid #223;box-sizing:border-box;'
        'margin:8px 0;"></div>'
    )
