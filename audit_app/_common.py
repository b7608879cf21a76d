"""Shared UI helpers of the report pages: the audit picker, bounded caches, messages, charts.

Streamlit only at call time: importing this module draws nothing. The audit is an
`audit.report.Report`, the pages' frames come from `_frames` and the decisions from the store's
reader; this module caches them (bounded, keyed by audit path and file mtimes) and turns
problems into messages on the page instead of tracebacks.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import altair as alt
import numpy as np
import streamlit as st

from audit import store
from audit.metrics import difficulty
from audit.metrics.difficulty import CATEGORIES
from audit.plots.style import CATEGORY_COLOURS, condition_palette
from audit.report import Report, count_noun
from audit.store import AuditError
from audit_app import _data, _frames, _image_frames

AUDIT_KEY = "audit_path"
TOLERANCE_KEY = "tolerance"
CATEGORY_COLORS = tuple(CATEGORY_COLOURS[c] for c in CATEGORIES)  # the figures' colour-blind-safe ones
CATEGORY_SCALE = alt.Scale(domain=list(CATEGORIES), range=list(CATEGORY_COLORS))


def condition_scale(groups) -> alt.Scale:
    """Each condition (a model's group) in its colour of the figures (`audit.plots.style.condition_palette`)."""
    palette = condition_palette(groups)
    return alt.Scale(domain=list(palette), range=list(palette.values()))


# --------------------------------------------------------------------------- bounded caches
@st.cache_resource(max_entries=4, show_spinner="Reading the audit…")
def load_data(path: str, stamp: tuple) -> Report:
    """The audit's report, cached per (path, file mtimes): a running audit refreshes on rerun.

    Cached as a resource (shared, never copied): a `Report` is not changed after it is loaded.
    """
    return Report.load(path)


@st.cache_resource(max_entries=8, show_spinner="Splitting at the chosen tolerance…")
def report_at(path: str, stamp: tuple, tolerance: int, n_bootstrap: int = 0) -> Report:
    """The report with its tolerance-dependent parts at `tolerance` (`Report.at_tolerance`)."""
    return load_data(path, stamp).at_tolerance(tolerance, n_bootstrap=n_bootstrap)


def at_tolerance(data: Report, *, n_bootstrap: int = 0) -> Report:
    """The report at the tolerance chosen on the Overview page."""
    return report_at(data.path, stamp_of(data), tolerance(data), n_bootstrap)


@st.cache_data(max_entries=2, show_spinner="Reading every model's decisions at every epoch…")
def correct_cube(path: str, stamp: tuple, models: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, correct of shape (n_images, n_models, n_epochs)) over the models' shared epochs."""
    data = load_data(path, stamp)
    epochs, cubes = store.decisions_by_epoch(path, list(models), ("correct",), data.image_ids)
    return epochs, np.asarray(cubes["correct"], dtype=bool)


@st.cache_data(max_entries=16, show_spinner=False)
def model_map(path: str, stamp: tuple, model: str):
    """One model's binned decision map, (epochs, share)."""
    return _frames.model_map(path, model, load_data(path, stamp).image_ids)


@st.cache_data(max_entries=2, show_spinner="Reading every model's final decisions…")
def final_decisions(path: str, stamp: tuple, fields: tuple = store.DECISION_FIELDS) -> dict:
    """Final-epoch decisions, each field (n_images, n_models): predicted, correct, true_prob and top_prob."""
    data = load_data(path, stamp)
    final, _ = store.final_decisions(path, data.model_names, fields, data.image_ids)
    return final


@st.cache_data(max_entries=8, show_spinner="Comparing the two groups…")
def compare_groups(path: str, stamp: tuple, group_a: tuple, group_b: tuple) -> dict:
    """Accessibility of both groups, its correlation, and the accuracy-matched counts."""
    data = load_data(path, stamp)
    return _image_frames.compare_groups(path, list(group_a), list(group_b), data.image_ids, data.images["label"].to_numpy())


def page_file(name: str) -> str:
    """A page's file, absolute, for `st.page_link` (the router registers the pages by absolute path)."""
    return str(Path(__file__).resolve().parent / name)


def page_icon():
    """The tab's icon, three bars drawn with PIL (served by the app itself; see app.py)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for x, top, colour in ((3, 6, (76, 114, 176)), (13, 16, (221, 132, 82)), (23, 10, (85, 168, 104))):
        draw.rectangle((x, top, x + 6, 29), fill=colour)
    return img


@st.cache_data(max_entries=32, show_spinner=False)
def thumbnails(path: str, stamp: tuple, image_ids: tuple, size: int) -> list:
    """The images as uint8 arrays of side about `size`."""
    return _image_frames.thumbnails(path, list(image_ids), size, **_data.parse_app_args(sys.argv).image_options(path))


@st.cache_data(max_entries=8, show_spinner=False)
def pixels_note(path: str, stamp: tuple) -> str | None:
    """Why the audit's images cannot be shown, or None (read once per audit version)."""
    return _image_frames.pixels_note(path, **_data.parse_app_args(sys.argv).image_options(path))


# --------------------------------------------------------------------------- choosing the audit
def select_audit() -> None:
    """The audit picker in the sidebar; puts the chosen directory in session state under AUDIT_KEY.

    The first choice comes from `--audit DIR` (after `--` on the streamlit command
    line), else the newest audit under `--runs DIR` (default `runs/`).
    """
    args = _data.parse_app_args(sys.argv)
    choices = store.list_audits(args.runs)
    if args.audit and args.audit not in choices:
        choices.insert(0, args.audit)
    if AUDIT_KEY not in st.session_state:
        st.session_state[AUDIT_KEY] = args.audit or (choices[0] if choices else None)
    current = st.session_state[AUDIT_KEY]
    if current and current not in choices:
        choices.insert(0, current)
    with st.sidebar:
        if choices:
            st.selectbox(
                "Audit",
                choices,
                index=choices.index(current) if current in choices else 0,
                key="audit_picker",
                on_change=_picked,
                format_func=lambda p: Path(p).name or p,
                help=f"Audits under `{args.runs}/`; start the app with `-- --audit DIR` to open another.",
            )
        else:
            st.caption(f"No audit under `{args.runs}/` yet.")
        st.button("Reload", key="audit_reload", help="Read the audit again: a running audit adds models.")


def _picked() -> None:
    st.session_state[AUDIT_KEY] = st.session_state["audit_picker"]


def require_audit() -> Report:
    """The selected audit's data, or a clear message on the page and `st.stop()`."""
    path = st.session_state.get(AUDIT_KEY)
    problem = store.audit_problem(path)
    if problem:
        if path:
            st.error(problem)
        else:
            st.info("No audit to show yet.")
        st.markdown(_data.MAKE_AUDIT_HELP)
        st.stop()
    path = str(path)
    try:
        data = load_data(path, store.audit_stamp(path))
    except (AuditError, OSError, ValueError, KeyError, TypeError) as err:  # a damaged or foreign directory
        st.error(f"Cannot read the audit `{path}`: {err}")
        st.markdown(_data.MAKE_AUDIT_HELP)
        st.stop()
    status = _data.status_message(data)
    if status:
        icon = ":material/hourglass_top:" if data.state == "running" else ":material/error:"
        st.warning(status, icon=icon)
    if data.source == "empty":
        st.info("No model has finished yet, so there is nothing to show. Come back when the first job is done.")
        st.stop()
    if data.source in ("missing", "stale"):
        what = "has no report yet" if data.source == "missing" else "has a report older than its finished models"
        st.info(
            f"This audit {what}; the app computed the tables from the stored decisions. "
            f"`ddd-audit report {path}` writes them to disk.",
            icon=":material/info:",
        )
    return data


def stamp_of(data: Report) -> tuple:
    return store.audit_stamp(data.path)


def tolerance(data: Report) -> int:
    """The tolerance chosen on the Overview page (session-wide), clipped to what this audit allows."""
    wanted = st.session_state.get(TOLERANCE_KEY, data.tolerance)
    return difficulty.usable_tolerance(int(wanted), data.n_models)


def header(title: str, data: Report, what: str) -> None:
    st.title(title)
    name = data.dataset.get("name", "dataset")
    st.caption(f"{what} · `{data.path}` · {name}, {count_noun(data.n_images, 'image')}, {count_noun(data.n_models, 'model')}")


def chart(spec, *, key: str, width: str = "stretch") -> None:
    """Draw an Altair chart, with a button under it that saves it as SVG.

    Streamlit's chart toolbar already downloads PNG. SVG needs vl-convert; without
    it the button saves the Vega-Lite spec, which any Vega tool turns into SVG.
    """
    st.altair_chart(spec, width=width, key=key)
    if _svg_export():
        import vl_convert

        st.download_button(
            "SVG", lambda: vl_convert.vegalite_to_svg(spec.to_json()), file_name=f"{key}.svg",
            mime="image/svg+xml", key=f"{key}_svg", type="tertiary", icon=":material/download:",
            help="Save this chart as SVG (the toolbar above it saves PNG).",
        )
    else:
        st.download_button(
            "Vega-Lite spec", lambda: spec.to_json(), file_name=f"{key}.vl.json", mime="application/json",
            key=f"{key}_spec", type="tertiary", icon=":material/download:",
            help="Save this chart's Vega-Lite spec; `vl-convert-python` makes the SVG button appear here.",
        )


def chart_help() -> str:
    """One line on how to read and save the charts."""
    saved = "SVG" if _svg_export() else "Vega-Lite spec (turn it into SVG with any Vega tool)"
    return (
        "Hover a chart for its values. The toolbar at a chart's top right downloads it as PNG or shows its "
        f"data; the button under it saves it as {saved}."
    )


@functools.cache
def _svg_export() -> bool:
    return importlib.util.find_spec("vl_convert") is not None


def notes(data: Report, *words: str) -> None:
    """The report's notes that mention any of `words` (all notes when none given)."""
    for note in data.notes:
        if not words or any(w in note for w in words):
            st.caption(f"Note: {note}")

