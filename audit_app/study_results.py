"""Study results for the researcher: enter a study's admin token, read the statistics
(human_study.analysis, shown through human_study.results) and download the two CSV exports
(human_study.export).

UI only. The token comes first: without the right one the page lists no study, shows no folder
and opens no path typed in; it looks only where the app looks for studies.
"""

from __future__ import annotations

import io
import math
import sys
import threading

import streamlit as st

from audit_app import _study
from human_study import results
from human_study.analysis import analyze, format_p_value, paper_summary
from human_study.design import study_setting
from human_study.errors import is_database_error
from human_study.experiment import question_text
from human_study.export import full_frame, model_vs_human_frame, tidy_frame
from human_study.figures import adaptive_figures, study_figures
from human_study.links import recruitment_link, server_base_url
from human_study.psychometric import study_fits


def prefetch_analysis() -> None:
    """Import the analysis' heaviest library (statsmodels, about a second) in the background while the token
    is typed, so the page itself draws at once and the first results come sooner."""
    if "statsmodels.api" not in sys.modules:
        threading.Thread(target=lambda: __import__("statsmodels.api"), daemon=True).start()


def pick_admin():
    """(study, admin) of the study whose admin token is entered, else None."""
    token = st.text_input(
        "Admin token",
        type="password",
        key="results_token",
        help="Printed once by `ddd-audit study create`; it opens that study's results.",
    )
    if not token:
        st.info("Enter a study's admin token to see its results.")
        return None
    match = _study.study_for_token(token)
    if match.study is None:
        st.error(results.token_message(match))
        return None
    return match.study, match.admin


def pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def num(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


@st.cache_resource(max_entries=4, show_spinner="analysing the responses")
def analysed(study_id: str, stamp: tuple[int, int], alpha: float, block: int, _admin) -> dict:
    """The responses, their analysis, the figures and the two exports, computed once per change of the
    study's responses (`stamp`) and settings; every rerun and every reader of the page draws from them."""
    responses = _admin.responses_frame()
    out = {"responses": responses}
    if len(responses):
        result = analyze(responses, alpha=alpha, block=block, n_numbers=results.n_numbers(_admin.study))
        out.update(result=result, figures={name: png_of(fig) for name, fig in study_figures(result, responses).items()})
        if "level" in responses:  # an adaptive study: its psychometric functions (human_study.psychometric)
            table, fits = study_fits(responses, _admin.study.config)
            out["fits"] = table
            if len(table):
                out["figures"].update({name: png_of(fig) for name, fig in adaptive_figures(fits).items()})
    return out


def png_of(fig) -> bytes:
    """A figure as a PNG at st.pyplot's 200 dpi, drawn once and kept."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200)  # constrained layout already fits it: no second, "tight" pass
    return buffer.getvalue()


def show_results(study, admin) -> None:
    stamp = admin.response_stamp()
    alpha = st.session_state.get("results_alpha", 0.05)
    block = int(st.session_state.get("results_block", results.default_block(study)))
    bundle = analysed(study.id, stamp, float(alpha), block, admin)
    responses = bundle["responses"]
    base_url = results.study_base_url(study) or server_base_url(st.context.url)
    people = results.observers_table(admin, responses, base_url=base_url)
    n_finished = sum(r["finished"] for r in people)
    st.subheader(f"{study.name} ({study.id})")
    st.markdown(
        f"Question: *{question_text(study)}*  \n{study.n_trials} main, {study.n_practice} practice and "
        f"{study.n_catch} catch trials per observer; {len(people)} observer{'' if len(people) == 1 else 's'}, {n_finished} finished, "
        f"{len(responses)} responses. Response times measured: {results.rt_sources(responses)}."
    )
    note = results.audit_note(study)
    if note is not None:
        (st.caption if note[0] else st.warning)(note[1])
    st.button("Refresh", key="results_refresh")
    with st.expander("Observers and their links", expanded=False):
        st.dataframe(
            people,
            key="results_observers",
            hide_index=True,
            column_config={"link": st.column_config.LinkColumn()},
        )
        if study_setting(study, "open_enrolment") and base_url:
            st.markdown("The recruiting service's link (one for every participant):")
            st.code(recruitment_link(base_url, study.id), language=None)
    if responses.empty:
        st.info("No responses yet.")
        return
    cols = st.columns(2)
    alpha = cols[0].number_input(
        "alpha (intervals at 1 - alpha)",
        min_value=0.001,
        max_value=0.5,
        value=0.05,
        step=0.01,
        format="%.3f",
        key="results_alpha",
    )
    block = cols[1].number_input(
        "Trials per block (accuracy over trials)",
        min_value=1,
        max_value=5000,
        value=results.default_block(study),
        step=1,
        key="results_block",
    )
    bundle = analysed(study.id, stamp, float(alpha), int(block), admin)  # the widgets' values of this run
    result, figures = bundle["result"], bundle["figures"]

    st.markdown("#### Summary")
    st.markdown("  \n".join(paper_summary(result)))
    st.caption("In the form of meding2022 §3.4: mean, range and SD over observers, and over pairs of observers.")

    st.markdown("#### Accuracy per observer (main trials)")
    st.caption(
        "p: one-sided exact binomial test against 50%. Wilson and Clopper-Pearson intervals at "
        f"{100 * (1 - alpha):g}%. Catch trials are counted apart."
    )
    st.image(figures["accuracy"], width="content")
    st.dataframe(
        results.accuracy_table(result.observers),
        key="results_accuracy",
        hide_index=True,
        column_config={
            "accuracy": st.column_config.NumberColumn(format="%.1f%%"),
            "catch_accuracy": st.column_config.NumberColumn(format="%.1f%%"),
            "p_value": None,
        },
    )
    acc = result.accuracy
    cols = st.columns(3)
    cols[0].metric("Mean accuracy", pct(acc["mean"]))
    one = len(result.observers) <= 1
    cols[1].metric("Range", "n/a (one observer)" if one else f"{pct(acc['min'])} - {pct(acc['max'])}")
    cols[2].metric("SD over observers", "n/a (one observer)" if one else pct(acc["sd"]))

    st.markdown("#### Error consistency between observers")
    ec = result.consistency_summary
    if ec["n"]:
        st.markdown(
            f"Mean kappa {num(ec['mean'])} (sd {num(ec['sd'])}, range {num(ec['min'])} to "
            f"{num(ec['max'])}) over {ec['n']} pairs of observers, on the trials both answered."
        )
        st.image(figures["consistency"], width="content")
        st.dataframe(
            result.consistency,
            key="results_consistency",
            hide_index=True,
            column_config={
                c: st.column_config.NumberColumn(format="%.3f") for c in ("c_obs", "c_exp", "kappa")
            },
        )
    else:
        st.markdown("Needs at least two observers.")

    st.markdown("#### Accuracy over trials (learning effect)")
    le = result.learning
    if le is None or math.isnan(le.slope):
        st.markdown(f"Logistic regression: {le.note if le else 'not computed'}.")
    else:
        st.markdown(
            f"Logistic regression of correctness on trial number ({le.n_responses} responses, observers "
            f"as fixed effects): slope {le.slope:+.4f} per trial (SE {le.slope_se:.4f}, p = "
            f"{format_p_value(le.p_value)}); odds ratio from trial 1 to trial {le.last_number} "
            f"{le.odds_ratio_first_to_last:.3g}."
        )
    if len(result.blocks):
        st.image(figures["learning"], width="content")
        st.dataframe(
            result.blocks,
            key="results_blocks",
            hide_index=True,
            column_config={"accuracy": st.column_config.NumberColumn(format="%.3f")},
        )

    st.markdown("#### Response times (ms, main trials)")
    st.image(figures["response_times"], width="content")
    st.dataframe(
        result.response_times,
        key="results_rts",
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.0f")
            for c in ("median", "mean", "q25", "q75", "min", "max", "median_correct", "median_wrong")
        },
    )

    if "fits" in bundle:
        show_fits(bundle["fits"], figures)

    st.markdown("#### Export")
    cols = st.columns(3 if "level" in responses else 2)
    if "level" in responses:
        cols[2].download_button(
            "Levels CSV (tidy)",
            lambda: results.csv_bytes(tidy_frame(responses)),
            file_name=f"{study.name}_levels.csv",
            mime="text/csv",
            key="results_download_levels",
            on_click="ignore",
        )
    cols[0].download_button(
        "model-vs-human CSV",
        lambda: results.csv_bytes(model_vs_human_frame(responses)),  # made when clicked
        file_name=f"{study.name}_model-vs-human.csv",
        mime="text/csv",
        key="results_download_mvh",
        on_click="ignore",
    )
    cols[1].download_button(
        "All responses CSV",
        lambda: results.csv_bytes(full_frame(responses)),
        file_name=f"{study.name}_responses.csv",
        mime="text/csv",
        key="results_download_full",
        on_click="ignore",
    )


def show_fits(table, figures: dict) -> None:
    """An adaptive study's psychometric functions: the figure and the table of fits."""
    st.markdown("#### Psychometric functions (adaptive design)")
    if table.empty:
        st.markdown("No main trials answered yet.")
        return
    st.caption(
        f"psignifit, 2AFC {table['sigmoid'].iloc[0]}, per observer and pooled (all): proportion correct against the "
        "gap in the models' mean correctness. Threshold: the gap halfway from guessing to the upper asymptote (75% "
        f"correct without lapses), with its {100 * table['coverage'].iloc[0]:g}% credible interval; slope there; "
        "deviance of the fit. Marker area: trials at that gap."
    )
    if "psychometric" in figures:
        st.image(figures["psychometric"], width="content")
    st.dataframe(table.drop(columns=["coverage"]), key="results_psychometric", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                ("threshold", "threshold_low", "threshold_high", "slope", "slope_low", "slope_high",
                                 "lapse", "deviance")})


def main() -> None:
    st.title("Study results")
    prefetch_analysis()
    try:
        picked = pick_admin()
        if picked is not None:
            show_results(*picked)
    except Exception as err:
        if not is_database_error(err):
            raise
        _study.log.warning("the study database cannot be read: %s", err)
        st.error(results.RESULTS_DATABASE_DOWN)
        st.button("Try again", key="results_retry")


main()
