"""Study results for the researcher: enter a study's admin token, read the statistics
(human_study.analysis, shown through human_study.results) and download the CSV exports
(human_study.export).

UI only: human_study.results makes every frame and word of the page; this lays them out. The token comes first: without the right one the page lists no study, shows no folder
and opens no path typed in; it looks only where the app looks for studies.
"""

from __future__ import annotations

import sys
import threading

import streamlit as st

from audit_app import _study
from human_study import results
from human_study.errors import is_database_error
from human_study.links import server_base_url


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


@st.cache_resource(max_entries=4, show_spinner="analysing the responses")
def analysed(study_id: str, stamp: tuple[int, int], alpha: float, block: int, _admin) -> dict:
    """The responses, their analysis, the figures and the fits (results.analysis_bundle), computed once per
    change of the study's responses (`stamp`) and settings; every rerun and every reader of the page draws
    from them."""
    return results.analysis_bundle(_admin, alpha=alpha, block=block)


def page_of(study, admin, stamp: tuple[int, int], alpha: float, block: int) -> results.ResultsPage:
    """The study's results page (frames and words) at these settings."""
    base_url = results.study_base_url(study) or server_base_url(st.context.url)
    bundle = analysed(study.id, stamp, float(alpha), int(block), admin)
    return results.results_page(admin, bundle, alpha=float(alpha), block=int(block), base_url=base_url)


def show_results(study, admin) -> None:
    stamp = admin.response_stamp()
    alpha = st.session_state.get("results_alpha", 0.05)
    block = int(st.session_state.get("results_block", results.default_block(study)))
    page = page_of(study, admin, stamp, alpha, block)
    words = page.words
    st.subheader(words.title)
    st.markdown(words.intro)
    if words.audit_note is not None:
        (st.caption if words.audit_note[0] else st.warning)(words.audit_note[1])
    st.button(words.refresh, key="results_refresh")
    with st.expander(words.observers, expanded=False):
        st.dataframe(page.observers, key="results_observers", hide_index=True,
                     column_config={"link": st.column_config.LinkColumn()})
        if words.recruitment is not None:
            st.markdown(words.recruitment)
            st.code(page.recruitment_link, language=None)
    if page.accuracy is None:
        st.info(words.no_responses)
        return
    cols = st.columns(2)
    alpha = cols[0].number_input(words.alpha_label, min_value=0.001, max_value=0.5, value=0.05, step=0.01,
                                 format="%.3f", key="results_alpha")
    block = cols[1].number_input(words.block_label, min_value=1, max_value=5000, value=results.default_block(study),
                                 step=1, key="results_block")
    if (float(alpha), int(block)) != (page.alpha, page.block):  # the widgets' values of this run
        page = page_of(study, admin, stamp, alpha, block)
    show_analysis(page)


def show_analysis(page: results.ResultsPage) -> None:
    """The statistics, figures and exports of a study with responses."""
    words, figures = page.words, page.figures
    st.markdown(f"#### {words.headings['summary']}")
    st.markdown(words.summary)
    st.caption(words.summary_caption)

    st.markdown(f"#### {words.headings['accuracy']}")
    st.caption(words.accuracy_caption)
    st.image(figures["accuracy"], width="content")
    st.dataframe(page.accuracy, key="results_accuracy", hide_index=True, column_config={
        "accuracy": st.column_config.NumberColumn(format="%.1f%%"),
        "catch_accuracy": st.column_config.NumberColumn(format="%.1f%%"),
        "p_value": None,
    })
    for col, (label, value) in zip(st.columns(len(words.metrics)), words.metrics, strict=True):
        col.metric(label, value)

    st.markdown(f"#### {words.headings['consistency']}")
    st.markdown(words.consistency)
    if page.consistency is not None:
        st.image(figures["consistency"], width="content")
        st.dataframe(page.consistency, key="results_consistency", hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("c_obs", "c_exp", "kappa")})

    st.markdown(f"#### {words.headings['learning']}")
    st.markdown(words.learning)
    if page.blocks is not None:
        st.image(figures["learning"], width="content")
        st.dataframe(page.blocks, key="results_blocks", hide_index=True,
                     column_config={"accuracy": st.column_config.NumberColumn(format="%.3f")})

    st.markdown(f"#### {words.headings['rts']}")
    st.image(figures["response_times"], width="content")
    st.dataframe(page.response_times, key="results_rts", hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.0f")
        for c in ("median", "mean", "q25", "q75", "min", "max", "median_correct", "median_wrong")
    })
    show_fits(page)
    show_downloads(page)


def show_fits(page: results.ResultsPage) -> None:
    """An adaptive study's psychometric functions: the figure and the table of fits."""
    words = page.words
    if words.fits_caption is None and words.fits_empty is None:
        return
    st.markdown(f"#### {words.headings['fits']}")
    if words.fits_empty is not None:
        st.markdown(words.fits_empty)
        return
    st.caption(words.fits_caption)
    if "psychometric" in page.figures:
        st.image(page.figures["psychometric"], width="content")
    st.dataframe(page.fits, key="results_psychometric", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                ("threshold", "threshold_low", "threshold_high", "slope", "slope_low", "slope_high",
                                 "lapse", "deviance")})


def show_downloads(page: results.ResultsPage) -> None:
    """The CSV exports, each made when its button is clicked."""
    st.markdown(f"#### {page.words.headings['export']}")
    for col, download in zip(st.columns(len(page.downloads)), page.downloads, strict=True):
        col.download_button(download.label, download.make, file_name=download.file_name, mime="text/csv",
                            key=f"results_download_{download.name}", on_click="ignore")


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
