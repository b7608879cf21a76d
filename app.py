"""`streamlit run app.py` in a checkout: runs the app that the package installs (audit_app/app.py)."""
import runpy

from audit_app import ROUTER

runpy.run_path(str(ROUTER), run_name="__main__")
