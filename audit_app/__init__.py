"""The Streamlit app, installed with the library: `ddd-audit app` serves the report, `ddd-audit study serve`
the experiment.

`app.py` is the router (Streamlit's entry point); beside it, one file per page, UI only. The app's own
modules: `_data` (its options, the audit it shows) and `_frames` (the report pages' frames), both without
Streamlit; `_common` (the report pages' caches and helpers) and `_study` (the study pages'); `_rt_component`
(the trial player's browser files). Importing this package imports no Streamlit and runs nothing.
"""

from pathlib import Path

#: The router that `streamlit run` starts.
ROUTER = Path(__file__).resolve().parent / "app.py"
