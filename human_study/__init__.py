"""The 2AFC human study built from an audit: which image of a pair is harder for a network?

- `design` picks the trial pairs; `schedule` orders them per observer; `stimuli` draws the images.
- `folder` creates, opens and finds study folders (study.json, images/, study.db).
- `schema` holds the database tables; `store` is what an observer's visit does with them;
  `admin` is what the admin token unlocks; `records` are the rows they hand out.
- `links` builds and reads observer links; `experiment` and `results` shape the two app pages
  (the Streamlit side is in audit_app/).
- `analysis` computes the statistics, `export` writes CSV files, `cli` holds `ddd-audit study ...`.

Importing this package imports none of them; no module here imports Streamlit.
"""
