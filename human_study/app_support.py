"""Logic behind the experiment and study-results pages: finding a study from its link, the
screen an observer sees next, committing answers, texts, stimulus HTML and results tables.

The pages (app_pages/experiment.py, app_pages/study_results.py) only lay out widgets and call
this module. Nothing here shows an observer any analysis or another observer's data.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from human_study.design import CATCH_TRIAL_NOTE, QUESTIONS
from human_study.errors import StudyError, UnknownObserver, UnknownStudy
from human_study.folder import STUDY_FORMAT, open_study_dir
from human_study.links import STUDY_ID_RE, normalize_code, observer_link
from human_study.records import MAX_RT_MS, Progress, Recorded, ScheduledTrial, Study
from human_study.schedule import SIDES
from human_study.store import Store

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from human_study.admin import StudyAdmin

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- finding a study
STUDY_DIRS_ENV = "DDD_STUDY_DIRS"
DEFAULT_STUDY_ROOT = "runs"
# Under each root: the root itself is a study, a folder of studies, an audit, or a folder of audits.
_STUDY_PATTERNS = ("study.json", "*/study.json", "studies/*/study.json", "*/studies/*/study.json")


@dataclass(frozen=True)
class StudyFolder:
    """A study folder found on disk (from its study.json; the database is not opened)."""

    folder: Path
    study_id: str
    name: str
    created_at: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.study_id}) - {self.folder}"


def _app_args(argv: Sequence[str]) -> tuple[str | None, str, tuple[str, ...]]:
    """(--audit, --runs, --study folders) from the app's command line, as the report pages read them."""
    try:
        from audit.app_data import parse_app_args
    except ImportError:  # an install without the report pages
        return None, DEFAULT_STUDY_ROOT, ()
    args = parse_app_args(argv)
    return args.audit, args.runs or DEFAULT_STUDY_ROOT, args.study


def serving_studies(argv: Sequence[str] | None = None) -> bool:
    """True when the app was started to serve studies: `streamlit run app.py -- --study DIR`.

    The app then shows observers only the experiment, and the results only behind an admin
    token; never an audit's report.
    """
    return bool(_app_args(sys.argv if argv is None else argv)[2])


def study_roots(
    audit_dir: str | os.PathLike | None = None,
    *,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Where the app looks for study folders, in this order.

    An app started for studies (`--study DIR`, repeatable) looks only in those folders.
    Otherwise:
    1. the audit chosen in the app (`audit_dir`, from the session state), if any;
    2. the app's `--audit DIR` (`streamlit run app.py -- --audit DIR`);
    3. every folder in the environment variable DDD_STUDY_DIRS (separated by os.pathsep);
    4. the app's `--runs DIR`, by default `runs/` under the directory the app was started from.
    Each root may be a study folder, a folder of study folders, an audit directory (its
    `studies/*`) or a folder of audit directories (`*/studies/*`).
    """
    environ = os.environ if environ is None else environ
    audit_arg, runs_arg, served = _app_args(sys.argv if argv is None else argv)
    if served:
        roots = [Path(p) for p in served]
    else:
        roots = [Path(p) for p in (audit_dir, audit_arg) if p]
        roots += [Path(p) for p in environ.get(STUDY_DIRS_ENV, "").split(os.pathsep) if p.strip()]
        roots.append(Path(runs_arg))
    unique: list[Path] = []
    for root in roots:
        resolved = root.expanduser().resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def session_audit_dir(session_state: Mapping) -> str | None:
    """The audit chosen in the app, if the router put one in the session state."""
    for key in ("audit_dir", "audit_path"):
        value = session_state.get(key)
        if isinstance(value, str | os.PathLike) and str(value):
            return str(value)
    return None


def _read_study_file(path: Path) -> StudyFolder | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != STUDY_FORMAT:
        return None
    study_id = info.get("study_id")
    if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
        return None
    return StudyFolder(
        path.parent.resolve(), study_id, str(info.get("name", "")), str(info.get("created_at", ""))
    )


def list_study_folders(roots: Iterable[str | os.PathLike]) -> list[StudyFolder]:
    """Every study folder under `roots` (see `study_roots`), newest first, each folder once."""
    found: dict[Path, StudyFolder] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for pattern in _STUDY_PATTERNS:
            for path in sorted(root.glob(pattern)):
                entry = _read_study_file(path)
                if entry is not None and entry.folder not in found:
                    found[entry.folder] = entry
    return sorted(found.values(), key=lambda s: (s.created_at, s.name), reverse=True)


def find_study_folder(study_id: object, roots: Iterable[str | os.PathLike]) -> Path:
    """The folder of the study with this id; raises UnknownStudy (a message for observers)."""
    if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
        raise UnknownStudy("this study link is not valid; check the link you were given")
    for entry in list_study_folders(roots):
        if entry.study_id == study_id:
            return entry.folder
    raise UnknownStudy("there is no study with this link on this server; check the link you were given")


@st.cache_resource(show_spinner=False, max_entries=64)
def open_study(folder: str) -> tuple[Store, Study]:
    """One Store per study folder and process, shared by every session (thread-safe)."""
    return open_study_dir(folder)


STUDY_UNAVAILABLE = "this study cannot be opened right now; please tell the researcher"


def open_study_for_observer(folder: str | os.PathLike) -> tuple[Store, Study]:
    """`open_study` for the experiment page: a study that cannot be opened (its database file is
    missing, its URL needs a password) gives observers a short message without paths or hosts;
    the details go to the server's log."""
    try:
        return open_study(str(folder))
    except StudyError as err:
        log.warning("study folder %s cannot be opened: %s", folder, err)
        raise StudyError(STUDY_UNAVAILABLE) from None


# --------------------------------------------------------------------------- the link
def link_params(query: Mapping[str, list[str]]) -> tuple[str, str]:
    """(study id, observer code) from the link's query parameters, each given exactly once.

    `query` maps a parameter name to all its values (`st.query_params.get_all`). Raises
    UnknownStudy or UnknownObserver, with a message for people, on anything else.
    """
    studies, codes = list(query.get("study") or []), list(query.get("observer") or [])
    if len(studies) != 1 or not isinstance(studies[0], str) or len(studies[0]) > 64:
        raise UnknownStudy(
            "this page needs a study link (…/experiment?study=…&observer=…); open the link you were given"
        )
    study_id = studies[0].strip().lower()
    if not STUDY_ID_RE.match(study_id):
        raise UnknownStudy("this study link is not valid; check the link you were given")
    if len(codes) != 1 or not isinstance(codes[0], str) or len(codes[0]) > 64:
        raise UnknownObserver("this link has no observer code; open the personal link you were given")
    return study_id, normalize_code(codes[0])


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


SCREENS = (
    "consent",
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
    if progress.n_answered == 0:
        if not visit.consented:
            return "consent"
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


def start_visit(store: Store, study: Study, code: str, *, user_agent: str | None = None) -> Visit:
    """A new session in the database (one per page load) and the visit that goes with it."""
    observer = store.get_observer(study.id, code)
    session = store.start_session(observer.id, user_agent=user_agent)
    return Visit(study.id, observer.code, observer.id, session.id, store.progress(observer.id).n_answered)


def mark_shown(visit: Visit, trial: ScheduledTrial, *, now: datetime | None = None) -> None:
    """Remember when a trial was first put on screen (server clock, for the server RT)."""
    visit.shown_at.setdefault(trial.trial_id, now or datetime.now(timezone.utc))


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


def is_database_error(err: BaseException) -> bool:
    """True for SQLAlchemy errors: the database is unreachable or locked for too long."""
    return type(err).__module__.startswith("sqlalchemy")


DATABASE_DOWN = "The study's database cannot be reached right now. Please reload this page in a minute."
SAVE_FAILED = "Your answer could not be saved. Please answer this trial again."
NOT_ON_SCREEN = "That answer was not for the trial on screen, so it was not recorded."


def submit_answer(
    store: Store, visit: Visit, trial_id: int, choice: str, *, rt_ms: float | None = None
) -> Recorded | None:
    """Commit one answer (idempotent) and set up the feedback of a practice trial.

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


def debrief_text(study: Study) -> str:
    """The study folder's debrief.md, or a generic debrief (true to the study's tolerance)."""
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


# --------------------------------------------------------------------------- stimuli
def stage_width(study: Study) -> int:
    """Width in px of the experiment's column: two stimuli side by side, at least 720 for text."""
    return max(720, 2 * int(study.size) + 160)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def stimulus_html(
    store: Store, study: Study, filename: str, *, side: str, trial_id: int, highlight: bool | None = None
) -> str:
    """An <img> of one stimulus at the study's size, inlined, tagged for the response listener.

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
    size = int(study.size)
    colour = {True: "#2e7d32", False: "transparent", None: None}[highlight]
    outline = "" if colour is None else f"outline:4px solid {colour};outline-offset:2px;"
    return (
        f'<div style="display:flex;justify-content:center;padding:6px 0;">'
        f'<img src="{uri}" width="{size}" height="{size}" alt="{html.escape(side)} image" draggable="false" '
        f'data-xp-trial="{int(trial_id)}" data-xp-side="{side}" '
        f'style="width:{size}px;height:{size}px;max-width:none;{outline}user-select:none;"></div>'
    )


# --------------------------------------------------------------------------- results page
def observers_table(admin: StudyAdmin, responses: pd.DataFrame, *, base_url: str | None = None) -> list[dict]:
    """One row per observer: subject, code, answers, status and link (for the admin only)."""
    counts = responses.groupby("observer_id").size().to_dict() if len(responses) else {}
    rows = []
    for o in admin.observers():
        row = {
            "subj": o.subject,
            "code": o.code,
            "answered": int(counts.get(o.id, 0)),
            "of": admin.study.n_total,
            "finished": o.finished_at is not None,
        }
        if base_url:
            row["link"] = observer_link(base_url, admin.study.id, o.code)
        rows.append(row)
    return rows


def accuracy_table(observers: pd.DataFrame) -> pd.DataFrame:
    """The per-observer accuracy frame with readable columns (percent, p-value, intervals)."""
    table = observers.copy()
    for low, high, name in (
        ("wilson_low", "wilson_high", "Wilson"),
        ("cp_low", "cp_high", "Clopper-Pearson"),
    ):
        table[name] = [
            "-" if (isinstance(a, float) and math.isnan(a)) else f"{100 * a:.1f}% - {100 * b:.1f}%"
            for a, b in zip(table[low], table[high], strict=True)
        ]
    table["accuracy"] = 100 * table["accuracy"]
    table["catch_accuracy"] = 100 * table["catch_accuracy"]
    return table[
        [
            "subj",
            "n_correct",
            "n_trials",
            "accuracy",
            "p_value",
            "Wilson",
            "Clopper-Pearson",
            "n_catch",
            "catch_accuracy",
        ]
    ]


def default_block(study: Study) -> int:
    """Trials per block for the accuracy-over-trials table: about 8 blocks, at least 1 trial."""
    return max(1, math.ceil((study.n_trials + study.n_catch) / 8))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@dataclass(frozen=True)
class TokenMatch:
    """What an admin token opens: the study and its admin view (None when no study has it), and
    how many studies could not be opened to check it (their details are in the server's log)."""

    study: Study | None
    admin: StudyAdmin | None
    unreadable: int = 0


def study_for_token(token: object, roots: Iterable[str | os.PathLike], *, opener=None) -> TokenMatch:
    """The study, among those under `roots`, whose admin token is `token`.

    The results page asks for the token first and lists nothing: without the right token it
    shows no study, no folder and no path, and it never opens a folder typed by the visitor.
    A study whose database cannot be opened is counted in `unreadable` and logged, never shown.
    """
    opener = open_study if opener is None else opener
    if not isinstance(token, str) or not token.strip():
        return TokenMatch(None, None)
    token = token.strip()
    unreadable = 0
    for entry in list_study_folders(roots):
        try:
            store, study = opener(str(entry.folder))
            if store.check_token(study.id, token):
                return TokenMatch(study, store.admin(study.id, token), unreadable)
        except StudyError as err:
            unreadable += 1
            log.warning("study folder %s cannot be opened: %s", entry.folder, err)
        except Exception as err:
            if not is_database_error(err):
                raise
            unreadable += 1
            log.warning("the database of study folder %s cannot be read: %s", entry.folder, err)
    return TokenMatch(None, None, unreadable)


def token_message(match: TokenMatch) -> str:
    """The results page's message when no study has the token given (no names, no paths)."""
    text = "No study on this server has this admin token, so no data is shown."
    if match.unreadable:
        n = match.unreadable
        text += (
            f" {n} stud{'y' if n == 1 else 'ies'} could not be opened to check it; the server's log "
            "says why."
        )
    return text


RESULTS_DATABASE_DOWN = "The study's database cannot be read right now; the server's log says why."

# --------------------------------------------------------------------------- the app's home page in serving mode
SERVING_HOME = (
    "### Welcome\n"
    "This server runs a study. To take part, open the personal link you were given: it ends in "
    "`?study=…&observer=…`."
)
STUDY_LINK_ON_REPORT = (
    "This is a study link, but this app was started to show an audit's report, not to run studies. "
    "If you are taking part in a study, please tell the researcher.\n\n"
    "Researchers: serve studies with `streamlit run app.py -- --study STUDY_DIR`."
)


def server_base_url(page_url: object) -> str | None:
    """scheme://host:port of the page's own URL (for observer links), or None."""
    from urllib.parse import urlsplit

    if not isinstance(page_url, str):
        return None
    parts = urlsplit(page_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def rt_sources(responses: pd.DataFrame) -> str:
    """How response times were measured, e.g. "client 140, server 9" (main and catch trials)."""
    test = responses[responses["kind"] != "practice"] if len(responses) else responses
    if not len(test):
        return "none yet"
    counts = test["rt_source"].fillna("none").value_counts()
    return ", ".join(f"{name} {int(n)}" for name, n in counts.items())
