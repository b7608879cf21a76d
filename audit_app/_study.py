"""The study pages' Streamlit side: the cached study stores, where the app looks for studies
(its command line and session state), and the router's study pages and their texts.

The study's logic lives in `human_study`, which imports no Streamlit. Importing this module
needs neither SQLAlchemy nor statsmodels (the study modules load on first use), so the report
app runs without the study extra.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # pragma: no cover
    from human_study.folder import TokenMatch
    from human_study.records import Study
    from human_study.visit import Store

log = logging.getLogger(__name__)

SERVING_HOME = (
    "### Welcome\n"
    "This server runs a study. To take part, open the personal link you were given: it ends in "
    "`?study=…&observer=…`."
)
STUDY_LINK_ON_REPORT = (
    "This is a study link, but this app was started to show an audit's report, not to run studies. "
    "If you are taking part in a study, please tell the researcher.\n\n"
    "Researchers: serve studies with `ddd-audit study serve --study-dir STUDY_DIR`."
)


# --------------------------------------------------------------------------- stores
@st.cache_resource(max_entries=16, show_spinner=False)
def store_for(url: str) -> Store:
    """One Store per database URL and process, shared by every session and study in it (thread-safe)."""
    from human_study.visit import Store

    return Store(url)


def open_study(folder: str) -> tuple[Store, Study]:
    """(store, study) of a study folder, through the cached store of its database."""
    from human_study.folder import open_study_dir

    return open_study_dir(folder, store_for=store_for)


def open_study_for_observer(folder: str | os.PathLike) -> tuple[Store, Study]:
    """`open_study` for the experiment page: a study that cannot be opened (its database file is
    missing, its URL needs a password) gives observers a short message without paths or hosts;
    the details go to the server's log."""
    from human_study.errors import StudyError
    from human_study.experiment import STUDY_UNAVAILABLE

    try:
        return open_study(str(folder))
    except StudyError as err:
        log.warning("study folder %s cannot be opened: %s", folder, err)
        raise StudyError(STUDY_UNAVAILABLE) from None


# --------------------------------------------------------------------------- where studies are
def _app_args(argv: Sequence[str]) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(--audit, --runs, --study folders) from the app's command line, as the report pages read them."""
    from audit_app._data import parse_app_args

    args = parse_app_args(argv)
    return args.audit, args.runs, args.study


def study_roots(
    audit_dir: str | os.PathLike | None = None,
    *,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Where the app looks for study folders (`human_study.folder.search_roots`).

    An app started for studies (`--study DIR`, repeatable) looks only in those folders.
    Otherwise: the audit chosen in the app (`audit_dir`), the app's `--audit DIR`, the folders
    in DDD_STUDY_DIRS, then the app's `--runs DIR` (default `runs/`).
    """
    from human_study.folder import DEFAULT_STUDY_ROOT, search_roots

    audit_arg, runs_arg, served = _app_args(sys.argv if argv is None else argv)
    return search_roots(
        served, audit_dirs=(audit_dir, audit_arg), runs=runs_arg or DEFAULT_STUDY_ROOT, environ=environ
    )


def session_audit_dir(session_state: Mapping) -> str | None:
    """The audit chosen in the app, if the router put one in the session state."""
    for key in ("audit_dir", "audit_path"):
        value = session_state.get(key)
        if isinstance(value, str | os.PathLike) and str(value):
            return str(value)
    return None


def app_study_roots() -> list[Path]:
    """`study_roots` of this session: the audit chosen in it and the app's command line."""
    return study_roots(session_audit_dir(st.session_state))


def study_for_token(token: object) -> TokenMatch:
    """The study, among those the app serves, whose admin token is `token` (see `human_study.folder`)."""
    from human_study.folder import study_for_token as find

    return find(token, app_study_roots(), opener=open_study)


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
