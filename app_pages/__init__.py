"""The app's pages: one file per page, UI only.

Beside them, the app's own modules: `_data` (its options, the audit it shows) and `_frames`
(the report pages' frames), both without Streamlit; `_common` (the report pages' caches and
helpers) and `_study` (the study pages'). Nothing here runs at import.
"""
