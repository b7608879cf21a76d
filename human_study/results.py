"""The study-results page without Streamlit: the analysis and figures it shows (`analysis_bundle`), every
frame it lays out (`results_page`) and every word on it (`results_words`), observers with their links,
accuracies as the page shows them, CSV bytes and how response times were measured.

Statistics are in `analysis`, CSV files in `export`; the page (audit_app/study_results.py) only lays this out.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from human_study.analysis import format_p_value
from human_study.links import observer_link

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from human_study.admin import StudyAdmin
    from human_study.analysis import StudyAnalysis
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


# --------------------------------------------------------------------------- the page as data
def png_of(fig) -> bytes:
    """A figure as a PNG at st.pyplot's 200 dpi, drawn once and kept."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200)  # constrained layout already fits it: no second, "tight" pass
    return buffer.getvalue()


def analysis_bundle(admin: StudyAdmin, *, alpha: float, block: int) -> dict:
    """The responses and, once there are any, their analysis (`result`), its figures as PNG bytes (`figures`)
    and, for an adaptive study, the psychometric fits (`fits`, human_study.psychometric)."""
    from human_study.analysis import analyze
    from human_study.figures import adaptive_figures, study_figures

    responses = admin.responses_frame()
    out = {"responses": responses}
    if len(responses):
        result = analyze(responses, alpha=alpha, block=block, n_numbers=n_numbers(admin.study))
        out.update(result=result, figures={name: png_of(fig) for name, fig in study_figures(result, responses).items()})
        if "level" in responses:  # an adaptive study
            from human_study.psychometric import study_fits

            table, fits = study_fits(responses, admin.study.config)
            out["fits"] = table
            if len(table):
                out["figures"].update({name: png_of(fig) for name, fig in adaptive_figures(fits).items()})
    return out


@dataclass(frozen=True)
class ResultsWords:
    """Every word of a study's results view, as `results_words` makes them (markdown where the page writes
    markdown). The analysis' words are None until there are responses; `fits_caption` is None for a fixed
    study and `fits_empty` None unless an adaptive study has no main trial answered."""

    title: str
    intro: str
    audit_note: tuple[bool, str] | None  # (fine, sentence): fine is a caption, else a warning
    refresh: str
    observers: str
    recruitment: str | None
    no_responses: str
    alpha_label: str
    block_label: str
    downloads: dict  # {name: (button label, file name)} in page order: mvh, full, then levels if adaptive
    headings: dict  # {section: heading} for summary, accuracy, consistency, learning, rts, fits, export
    summary: str | None = None
    summary_caption: str | None = None
    accuracy_caption: str | None = None
    metrics: tuple = ()  # ((label, value), ...) under the accuracy table
    consistency: str | None = None
    learning: str | None = None
    fits_caption: str | None = None
    fits_empty: str | None = None


def results_words(study: Study, *, responses: pd.DataFrame, observers: list[dict], alpha: float,
                  recruiting: bool, result: StudyAnalysis | None = None,
                  fits: pd.DataFrame | None = None) -> ResultsWords:
    """Every word of the results view of `study`: its header, the labels of its widgets and downloads, the
    headings of its sections and, with an analysis (`result`, at 1 - `alpha`), its sentences and metrics."""
    from human_study.analysis import paper_summary
    from human_study.experiment import question_text

    n_finished = sum(r["finished"] for r in observers)
    adaptive = "level" in responses
    downloads = {"mvh": ("model-vs-human CSV", f"{study.name}_model-vs-human.csv"),
                 "full": ("All responses CSV", f"{study.name}_responses.csv")}
    if adaptive:
        downloads["levels"] = ("Levels CSV (tidy)", f"{study.name}_levels.csv")
    words = dict(
        title=f"{study.name} ({study.id})",
        intro=f"Question: *{question_text(study)}*  \n{study.n_trials} main, {study.n_practice} practice and "
              f"{study.n_catch} catch trials per observer; {len(observers)} observer"
              f"{'' if len(observers) == 1 else 's'}, {n_finished} finished, "
              f"{len(responses)} responses. Response times measured: {rt_sources(responses)}.",
        audit_note=audit_note(study), refresh="Refresh", observers="Observers and their links",
        recruitment="The recruiting service's link (one for every participant):" if recruiting else None,
        no_responses="No responses yet.", alpha_label="alpha (intervals at 1 - alpha)",
        block_label="Trials per block (accuracy over trials)", downloads=downloads,
        headings={"summary": "Summary", "accuracy": "Accuracy per observer (main trials)",
                  "consistency": "Error consistency between observers",
                  "learning": "Accuracy over trials (learning effect)", "rts": "Response times (ms, main trials)",
                  "fits": "Psychometric functions (adaptive design)", "export": "Export"},
    )
    if result is None:
        return ResultsWords(**words)
    acc, one = result.accuracy, len(result.observers) <= 1
    words.update(
        summary="  \n".join(paper_summary(result)),
        summary_caption="In the form of meding2022 §3.4: mean, range and SD over observers, and over pairs of "
                        "observers.",
        accuracy_caption="p: one-sided exact binomial test against 50%. Wilson and Clopper-Pearson intervals at "
                         f"{100 * (1 - alpha):g}%. Catch trials are counted apart.",
        metrics=(("Mean accuracy", _pct(acc["mean"])),
                 ("Range", "n/a (one observer)" if one else f"{_pct(acc['min'])} - {_pct(acc['max'])}"),
                 ("SD over observers", "n/a (one observer)" if one else _pct(acc["sd"]))),
        consistency=_consistency_words(result.consistency_summary), learning=_learning_words(result.learning),
    )
    if fits is not None and fits.empty:
        words["fits_empty"] = "No main trials answered yet."
    elif fits is not None:
        words["fits_caption"] = (
            f"psignifit, 2AFC {fits['sigmoid'].iloc[0]}, per observer and pooled (all): proportion correct against "
            "the gap in the models' mean correctness. Threshold: the gap halfway from guessing to the upper "
            f"asymptote (75% correct without lapses), with its {100 * fits['coverage'].iloc[0]:g}% credible "
            "interval; slope there; deviance of the fit. Marker area: trials at that gap.")
    return ResultsWords(**words)


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _consistency_words(ec: dict) -> str:
    if not ec["n"]:
        return "Needs at least two observers."
    return (f"Mean kappa {_num(ec['mean'])} (sd {_num(ec['sd'])}, range {_num(ec['min'])} to "
            f"{_num(ec['max'])}) over {ec['n']} pairs of observers, on the trials both answered.")


def _learning_words(le) -> str:
    if le is None or math.isnan(le.slope):
        return f"Logistic regression: {le.note if le else 'not computed'}."
    return (f"Logistic regression of correctness on trial number ({le.n_responses} responses, observers "
            f"as fixed effects): slope {le.slope:+.4f} per trial (SE {le.slope_se:.4f}, p = "
            f"{format_p_value(le.p_value)}); odds ratio from trial 1 to trial {le.last_number} "
            f"{le.odds_ratio_first_to_last:.3g}.")


@dataclass(frozen=True)
class Download:
    """One CSV the page offers: `name` (mvh, full or levels), its label and file name, and `make`, which
    makes the bytes when called (when the button is clicked)."""

    name: str
    label: str
    file_name: str
    make: Callable[[], bytes]


@dataclass(frozen=True)
class ResultsPage:
    """What the results page shows of a study, in page order; a frame is None where the page shows none.

    observers : one row per observer (`observers_table`); recruitment_link : the open-enrolment link or None
    accuracy, consistency, blocks, response_times : the analysis' frames (consistency None with fewer than two
        observers, blocks None when empty); fits : an adaptive study's fits without their coverage, else None
    figures : {name: PNG bytes}; downloads : the CSVs, in page order; words : every word (`ResultsWords`)
    """

    words: ResultsWords
    observers: list
    recruitment_link: str | None
    alpha: float
    block: int
    figures: dict
    accuracy: pd.DataFrame | None = None
    consistency: pd.DataFrame | None = None
    blocks: pd.DataFrame | None = None
    response_times: pd.DataFrame | None = None
    fits: pd.DataFrame | None = None
    downloads: tuple = ()


def results_page(admin: StudyAdmin, bundle: dict, *, alpha: float, block: int,
                 base_url: str | None) -> ResultsPage:
    """The results page of `admin`'s study from its `analysis_bundle` at (`alpha`, `block`), with the
    observers' links at `base_url` (none without one)."""
    from human_study.design import study_setting
    from human_study.links import recruitment_link

    study, responses = admin.study, bundle["responses"]
    observers = observers_table(admin, responses, base_url=base_url)
    recruiting = bool(study_setting(study, "open_enrolment") and base_url)
    result, fits = bundle.get("result"), bundle.get("fits")
    words = results_words(study, responses=responses, observers=observers, alpha=alpha, recruiting=recruiting,
                          result=result, fits=fits)
    page = dict(words=words, observers=observers, recruitment_link=recruitment_link(base_url, study.id)
                if recruiting else None, alpha=alpha, block=block, figures=bundle.get("figures", {}))
    if result is None:
        return ResultsPage(**page)
    return ResultsPage(
        **page, accuracy=accuracy_table(result.observers),
        consistency=result.consistency if result.consistency_summary["n"] else None,
        blocks=result.blocks if len(result.blocks) else None, response_times=result.response_times,
        fits=None if fits is None or fits.empty else fits.drop(columns=["coverage"]),
        downloads=tuple(Download(name, label, file_name, _maker(name, responses))
                        for name, (label, file_name) in words.downloads.items()),
    )


def _maker(name: str, responses: pd.DataFrame) -> Callable[[], bytes]:
    """The bytes of download `name`, made when called."""
    from human_study.export import full_frame, model_vs_human_frame, tidy_frame

    frame_of = {"mvh": model_vs_human_frame, "full": full_frame, "levels": tidy_frame}[name]
    return lambda: csv_bytes(frame_of(responses))
