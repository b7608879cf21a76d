"""Streamlit entry point: a router over the pages in audit_app/, nothing else.

Two modes, chosen by the command line:

- `ddd-audit app runs/NAME` (`streamlit run app.py -- --audit runs/NAME`, or `--runs DIR` to pick among audits) shows an
  audit's report and, behind a study's admin token, its results. Run it for yourself; it is not
  for observers, and study links (`?study=`) get a short message here, not the experiment.
- `ddd-audit study serve --study-dir DIR` (`streamlit run app.py -- --study DIR`, repeatable) serves studies: every URL shows observers
  only the experiment (or, without `?study=`, a note to open their link); the results are at
  /results behind the admin token; no report, whatever the link.
"""

import sys
from pathlib import Path

import streamlit as st

from audit_app import _common, _data, _study

PAGES = Path(__file__).resolve().parent  # the pages lie beside this router; absolute, so any entry point works
REPORT_PAGES = (
    ("overview.py", "Overview", ":material/dashboard:"),
    ("consistency.py", "Consistency", ":material/grid_on:"),
    ("dynamics.py", "Dynamics", ":material/timeline:"),
    ("classes.py", "Classes", ":material/category:"),
    ("deeper.py", "Deeper measures", ":material/layers:"),
    ("images.py", "Images", ":material/photo_library:"),
    ("compare.py", "Compare", ":material/compare_arrows:"),
    ("scored.py", "Scored", ":material/leaderboard:"),
)

# The tab's icon is drawn here and served by this server: a ":material/...:" or emoji icon is fetched
# from a font or emoji CDN, and nothing of the app may call a host but its own server (docs/security.md).
st.set_page_config(page_title="ddd-audit", page_icon=_common.page_icon(), layout="wide")
args = _data.parse_app_args(sys.argv)
if not args.serving and not st.get_option("server.address"):
    st.sidebar.warning("This report is served on every network interface. Start it with "
                       "`--server.address 127.0.0.1` (the default of this repository's .streamlit/config.toml) "
                       "unless others should read it.")

if args.serving:
    # Observers see the experiment only. Streamlit serves the default page at "/" alone, so the
    # experiment (at /experiment, the links' path) is not the default; "/?study=..." forwards to it
    # and "/" without a link shows a note. Nothing of the report is registered, so no URL reaches it.
    if (PAGES / "experiment.py").exists():
        experiment = st.Page(PAGES / "experiment.py", title="Experiment", url_path="experiment")
    else:
        experiment = st.Page(_study.experiment_missing, title="Experiment", url_path="experiment")
    pages = [st.Page(_study.study_home(experiment), title="Study", url_path="start", default=True), experiment]
    if (PAGES / "study_results.py").exists():
        pages.append(st.Page(PAGES / "study_results.py", title="Study results", url_path="results"))
    st.navigation(pages, position="hidden").run()
elif "study" in st.query_params:
    # A study link opened on the report app (at / or /experiment, the links' path): a note, not the experiment.
    note = _study.study_link_on_report
    pages = [st.Page(note, title="Study", url_path="study", default=True),
             st.Page(lambda: note(), title="Study link", url_path="experiment")]
    st.navigation(pages, position="hidden").run()
else:
    _common.select_audit()
    report = [
        st.Page(PAGES / file, title=title, icon=icon, default=i == 0)
        for i, (file, title, icon) in enumerate(REPORT_PAGES)
        if (PAGES / file).exists()
    ]
    pages = {"Report": report}
    if (PAGES / "study_results.py").exists():
        pages["Human study"] = [
            st.Page(PAGES / "study_results.py", title="Study results", icon=":material/groups:")
        ]
    st.navigation(pages).run()
