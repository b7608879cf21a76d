"""The study-results page's tables and messages, without Streamlit: observers with their links,
accuracies as the page shows them, blocks, CSV bytes and how response times were measured.

Statistics are in `analysis`, CSV files in `export`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from human_study.analysis import format_p_value
from human_study.links import observer_link

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from human_study.admin import StudyAdmin
    from human_study.folder import TokenMatch
    from human_study.records import Study

RESULTS_DATABASE_DOWN = "The study's database cannot be read right now; the server's log says why."


def observers_table(admin: StudyAdmin, responses: pd.DataFrame, *, base_url: str | None = None) -> list[dict]:
    """One row per observer: subject, code, trials answered (main and catch, of how many;
    practice apart), status and link (for the admin only)."""
    study = admin.study
    test = responses[responses["kind"] != "practice"] if len(responses) else responses
    counts = test.groupby("observer_id").size().to_dict() if len(test) else {}
    practice = (
        responses[responses["kind"] == "practice"].groupby("observer_id").size().to_dict() if len(responses) else {}
    )
    rows = []
    for o in admin.observers():
        row = {
            "subj": o.subject,
            "code": o.code,
            "answered": int(counts.get(o.id, 0)),
            "of": study.n_trials + study.n_catch,
            "practice": f"{int(practice.get(o.id, 0))}/{study.n_practice}",
            "finished": o.finished_at is not None,
            "ended": o.ended_reason or "",
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
    table["p"] = [format_p_value(v) for v in table["p_value"]]
    table["accuracy"] = 100 * table["accuracy"]
    table["catch_accuracy"] = 100 * table["catch_accuracy"]
    return table[
        [
            "subj",
            "n_correct",
            "n_trials",
            "accuracy",
            "p",
            "p_value",
            "Wilson",
            "Clopper-Pearson",
            "n_catch",
            "catch_accuracy",
        ]
    ]


def n_numbers(study: Study) -> int:
    """The last trial number of the study's test part (main and catch trials)."""
    return study.n_trials + study.n_catch


def default_block(study: Study) -> int:
    """Trials per block for the accuracy-over-trials table: about 8 blocks, at least 1 trial."""
    return max(1, math.ceil((study.n_trials + study.n_catch) / 8))


def study_base_url(study: Study) -> str | None:
    """The address the study's links use, as its study.json keeps it; None if never given or unreadable."""
    from human_study.errors import StudyError
    from human_study.folder import study_base_url as recorded

    try:
        return recorded(study.folder)
    except StudyError:
        return None


def audit_note(study: Study) -> tuple[bool, str] | None:
    """(fine, sentence) on the audit the study was made from, as study.json recorded it; None if unknown."""
    from human_study.errors import StudyError
    from human_study.folder import audit_state_of

    try:
        state = audit_state_of(study.folder)
    except StudyError:
        return None
    if not state:
        return None
    n = int(state.get("n_models", 0))
    made = f"Made from a{'n' if state.get('state', '')[:1] in 'aeiou' else ''} {state.get('state')} audit of {n} " \
           f"{'model' if n == 1 else 'models'}"
    problems = state.get("problems") or []
    if problems:
        return False, f"{made} (--allow-incomplete): {'; '.join(problems)}. Its split says little about difficulty."
    return True, f"{made}."


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A table as CSV for a download; formula cells neutralised (audit.store.files.spreadsheet_safe)."""
    from audit.store.files import csv_bytes as safe_csv_bytes

    return safe_csv_bytes(frame)


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

def rt_sources(responses: pd.DataFrame) -> str:
    """How response times were measured, e.g. "client 140, server 9" (main and catch trials)."""
    test = responses[responses["kind"] != "practice"] if len(responses) else responses
    if not len(test):
        return "none yet"
    counts = test["rt_source"].fillna("none").value_counts()
    return ", ".join(f"{name} {int(n)}" for name, n in counts.items())
