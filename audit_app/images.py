"""Images page: a gallery of trivial, inconclusive and impossible images, and one image in depth.

Filter by category and class, sort by any per-image score, export the selection (a CSV
download, and the `ddd-audit export` command that writes it as an ImageFolder); Inspect
(or a table row) shows every model's decision on the image, its label beside the models'
majority, its label issue and why it is impossible. UI only; the data comes from `_frames`.
"""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from audit.metrics.difficulty import CATEGORIES
from audit_app import _charts, _common, _frames, _image_frames

SELECTED = "images_selected"
TABLE_IDS = "images_table_ids"
TABLE_ROWS = 1000
#: columns the table shows with three decimals
DECIMALS = ("tp_agreement", "consensus", "mean_true_prob", "accessibility", "label_quality", "el2n", "aum",
            "cartography_confidence", "cartography_variability", "cartography_correctness")

data = _common.require_audit()
_common.header("Images", data, "Look at single images and every model's decision on them")
stamp = _common.stamp_of(data)
t = _common.tolerance(data)


def _table_columns(table: pd.DataFrame) -> dict:
    """Readable headers for the table; number columns stay numbers (they sort as numbers), the CSV's name is the help."""
    config = {}
    for c in table.columns:
        label, about = _charts.image_column_label(c), f"`{c}` in the CSV download and images.parquet"
        if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c]):
            config[c] = st.column_config.NumberColumn(label, help=about, format="%.3f" if c in DECIMALS else None)
        else:
            config[c] = st.column_config.Column(label, help=about)
    return config


def _inspect(image_id: int) -> None:
    st.session_state[SELECTED] = int(image_id)


def _from_table() -> None:
    rows = st.session_state["images_table"].selection.rows
    ids = st.session_state.get(TABLE_IDS, [])
    if rows and rows[0] < len(ids):
        st.session_state[SELECTED] = int(ids[rows[0]])


def _from_lookup() -> None:
    value = st.session_state.get("images_lookup")
    if value is not None:
        st.session_state[SELECTED] = int(value)


@st.dialog("Image details", width="large")
def show_image(image_id: int) -> None:
    ids = data.image_ids
    pos = int(np.searchsorted(ids, image_id))
    if pos >= len(ids) or ids[pos] != image_id:
        st.error(f"Image {image_id} is not in this audit (ids run from {ids.min()} to {ids.max()}).")
        return
    row = data.images.iloc[pos]
    st.markdown(f"#### #{image_id} · class {row['class_name']}")
    left, right = st.columns([1, 2])
    with left:
        st.image(_common.thumbnails(data.path, stamp, (image_id,), 224)[0], width=224)
        scores = _image_frames.image_scores(data, image_id, t)
        scores["score"] = scores["score"].map(_charts.image_column_label)
        st.dataframe(scores, hide_index=True, key="images_scores")
    with right:
        final = _common.final_decisions(data.path, stamp)
        decisions = _image_frames.image_decisions(data, final, image_id)
        right_count = int(decisions["correct"].sum())
        st.markdown(f"**{right_count} of {len(decisions)} models are right** at their final epoch.")
        review = _image_frames.image_review(data, final, image_id)
        st.markdown(f"Label **{review['label']}** · majority prediction **{review['majority']}** "
                    f"({review['votes']} of {review['n_models']} models)")
        quality = "" if review["label_quality"] is None else f" (label quality {review['label_quality']:.3f})"
        if review["is_label_issue"]:
            st.warning(f"**Label issue**: cleanlab flags the label {review['label']} as likely wrong{quality}. "
                       f"Suggested label: **{review['majority']}**, the models' majority.",
                       icon=":material/label_off:")
        elif review["is_label_issue"] is False:
            st.caption(f"No label issue: cleanlab does not flag this label{quality}.")
        if review["cause"]:
            st.info(f"**Why impossible: {review['cause']}**: {review['cause_text']}.", icon=":material/help:")
        st.dataframe(
            decisions,
            hide_index=True,
            key="images_decisions",
            column_config={
                "correct": st.column_config.CheckboxColumn("correct"),
                "true_prob": st.column_config.ProgressColumn("true-class prob.", format="%.2f", min_value=0, max_value=1),
                "confidence": st.column_config.NumberColumn("confidence", format="%.2f",
                                                            help="Probability of the predicted class"),
            },
        )
    if data.dynamics:
        models = tuple(data.dynamics["models"])
        epochs, cube = _common.correct_cube(data.path, stamp, models)
        history = _image_frames.image_history(cube, epochs, models, pos)
        strip = (
            alt.Chart(history)
            .mark_rect(stroke="white", strokeWidth=0.5)
            .encode(
                x=alt.X("epoch:O"),
                y=alt.Y("model:N", sort=list(models), title=None),
                color=alt.Color("decision:N", scale=alt.Scale(domain=["correct", "wrong"], range=["#2ca02c", "#d62728"])),
                tooltip=["model:N", "epoch:O", "decision:N"],
            )
            .properties(height=alt.Step(22), title="Its decisions over the epochs")
        )
        with right:
            _common.chart(strip, key="images_history")


# ---- filters
cols = st.columns(2)  # the category chips need half the page: three of them side by side
categories = cols[0].multiselect(
    "Category", CATEGORIES, default=list(CATEGORIES), key="images_category",
    help=f"At tolerance {t} (set on Overview).",
)
classes = cols[1].multiselect("Class", data.class_names, key="images_class", placeholder="all classes")
scores = _image_frames.score_columns(data.images)
cols = st.columns([2, 2, 3])
sort_by = cols[0].selectbox("Sort by", scores, key="images_sort", format_func=_charts.image_column_label)
order = cols[1].radio("Order", ["lowest first", "highest first"], key="images_order", horizontal=True)
deep = _image_frames.deep_filter_options(data.images)
causes, depth_types, label_issues_only = [], [], False
if deep:
    dcols = st.columns([2, 3, 2])
    if "impossible_cause" in deep:
        causes = dcols[0].multiselect("Why impossible", deep["impossible_cause"], key="images_cause",
                                      placeholder="any cause",
                                      help="label_error, look_alike or ambiguous, from label issues and depth types.")
    if "depth_type" in deep:
        depth_types = dcols[1].multiselect("Depth type", deep["depth_type"], key="images_depth_type",
                                           placeholder="any type", help="baldock2021 §4, from prediction depth.")
    if "is_label_issue" in deep:
        label_issues_only = dcols[2].checkbox("Label issues only", key="images_label_issues",
                                              help="Images that cleanlab flags as likely mislabeled.")
    st.page_link(_common.page_file("deeper.py"), label="Prediction depth, label issues and learnability by category: "
                 "Deeper measures", icon=":material/layers:")
filtered = _image_frames.filter_images(
    data, tolerance=t, categories=categories, classes=classes, sort_by=sort_by, ascending=order == "lowest first",
    label_issues_only=label_issues_only, causes=causes, depth_types=depth_types,
)

info, export, lookup = st.columns([3, 2, 2])
info.markdown(f"**{len(filtered):,}** of {data.n_images:,} images match.")
with export.popover("Export this selection", icon=":material/download:", disabled=filtered.empty, width="stretch"):
    st.download_button(
        "Download these images (CSV)",
        lambda: _frames.to_csv_bytes(filtered),
        file_name="images_filtered.csv",
        mime="text/csv",
        key="images_download",
        disabled=filtered.empty,
    )
    st.markdown("Or write them as an ImageFolder tree (links to the image files, PNG files for array "
                "datasets) with its dataset card:")
    st.code(_image_frames.export_command(data.path, t, categories=categories, classes=classes,
                                   label_issues_only=label_issues_only, causes=causes, depth_types=depth_types),
            language="bash", wrap_lines=True)
lookup.number_input(
    "Inspect image id", min_value=int(data.image_ids.min()), max_value=int(data.image_ids.max()), value=None,
    step=1, key="images_lookup", on_change=_from_lookup, placeholder="image id",
)

if filtered.empty:
    st.info("No image matches these filters.")
else:
    # ---- gallery
    per_row = 6
    colour = dict(zip(CATEGORIES, ("green", "blue", "red"), strict=True))
    size = st.session_state.get("images_page_size", 24)
    n_pages = max(1, -(-len(filtered) // size))
    if int(st.session_state.get("images_page") or 1) > n_pages:
        st.session_state["images_page"] = n_pages
    page = int(st.session_state.get("images_page") or 1)
    shown = filtered.iloc[(page - 1) * size : page * size]
    thumbs = _common.thumbnails(data.path, stamp, tuple(int(i) for i in shown["image_id"]), 112)
    majority = _image_frames.majority_labels(data, _common.final_decisions(data.path, stamp, ("predicted",)),
                                       shown["image_id"])
    st.caption("Under each image: its id, its label → the models' majority prediction, and its category.")
    note = _common.pixels_note(data.path, stamp)
    if note:
        st.info(note, icon=":material/hide_image:")
    for start in range(0, len(shown), per_row):
        row_cols = st.columns(per_row)
        for col, (_, img), thumb, voted in zip(row_cols, shown.iloc[start : start + per_row].iterrows(),
                                               thumbs[start : start + per_row], majority[start : start + per_row],
                                               strict=False):
            with col:
                name, voted = (n if len(n) <= 14 else n[:13] + "…" for n in (str(img["class_name"]), voted))
                st.image(thumb, width="stretch")
                st.markdown(
                    f"#{img['image_id']} · {name} → {voted}  \n:{colour[img['category']]}[{img['category']} · "
                    f"{int(img['n_correct'])}/{data.n_models} right]"
                )
                st.button("Inspect", key=f"images_inspect_{img['image_id']}", on_click=_inspect,
                          args=(int(img["image_id"]),), width="stretch")
    nav = st.columns([2, 2, 6])
    nav[0].number_input(f"Page (of {n_pages:,})", min_value=1, max_value=n_pages, step=1, key="images_page")
    nav[1].selectbox("Images per page", [12, 24, 48, 96], index=[12, 24, 48, 96].index(size),
                     key="images_page_size")

    # ---- table
    st.subheader("Table")
    table = filtered.head(TABLE_ROWS)
    st.session_state[TABLE_IDS] = [int(i) for i in table["image_id"]]
    st.dataframe(
        table,
        hide_index=True,
        key="images_table",
        column_order=[c for c in table.columns if c not in ("split", "source")],
        on_select=_from_table,
        selection_mode="single-row",
        column_config=_table_columns(table),
        placeholder="",  # a missing number (never learned, no depth) is a blank cell, not "None"
    )
    more = f"The table shows the first {TABLE_ROWS:,} of {len(filtered):,}; the CSV has all. "
    st.caption(f"{more if len(filtered) > TABLE_ROWS else ''}Select a row, or press Inspect under an image, "
               "to see every model's decision.")

selected = st.session_state.pop(SELECTED, None)
if selected is not None:
    show_image(int(selected))
