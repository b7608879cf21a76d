"""The study pages' Streamlit side: the router's study pages and their texts.

The study's logic lives in `human_study` and imports no Streamlit; this module holds what needs
it. Importing it needs neither SQLAlchemy nor statsmodels, so the report app runs without the
study extra.
"""

from __future__ import annotations

import streamlit as st

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


# --------------------------------------------------------------------------- router pages
def experiment_missing() -> None:
    """Stand-in for the observer page while it is not installed."""
    st.title("Experiment")
    st.info("The experiment page is not available in this installation.")


def study_home(experiment):
    """The default page of an app serving studies: forwards a study link to the experiment,
    and shows anyone without one a note to open their personal link (nothing else)."""

    def home() -> None:
        if "study" in st.query_params:
            st.switch_page(experiment, query_params=st.query_params.to_dict())
        st.markdown(SERVING_HOME)

    return home


def study_link_on_report() -> None:
    """What a study link gets from an app that shows a report: a note, not the experiment."""
    st.title("Study")
    st.info(STUDY_LINK_ON_REPORT, icon=":material/link_off:")
