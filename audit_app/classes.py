"""Classes page: per-class accuracy, the easiest and hardest classes, and each class's split.

Per-class accuracy comes from the report's table (meding2022 A.6, Table 1);
the category shares follow the tolerance chosen on Overview. UI only.
"""

import altair as alt
import pandas as pd
import streamlit as st

from audit.metrics.difficulty import CATEGORIES
from audit.store import CONFUSION_TABLES
from audit_app import _charts, _common, _frames

data = _common.require_audit()
_common.header("Classes", data, "Which classes are easy and which are hard")
t = _common.tolerance(data)
frame = _frames.class_frame(data, t)
if frame.empty:
    st.warning("No class has any image in this audit.")
    st.stop()

many = len(frame) > 60
sort = list(frame["class_name"])
bars = (
    alt.Chart(frame)
    .mark_bar(color="#1f77b4")
    .encode(
        x=alt.X("class_name:N", sort=sort, title="classes, easiest first",
                axis=alt.Axis(labels=not many, ticks=not many, labelAngle=-60)),
        y=alt.Y("mean:Q", title="accuracy (mean over models)", scale=alt.Scale(domain=[0, 1])),
        tooltip=[
            alt.Tooltip("class_name:N", title="class"),
            alt.Tooltip("rank:Q"),
            alt.Tooltip("n_images:Q", title="images", format=","),
            alt.Tooltip("mean:Q", title="mean accuracy", format=".1%"),
            alt.Tooltip("min:Q", title="worst model", format=".1%"),
            alt.Tooltip("max:Q", title="best model", format=".1%"),
            *[alt.Tooltip(f"{c}:Q", title=f"{c} images", format=".1%") for c in CATEGORIES],
        ],
    )
)
chart = bars
if data.n_models > 1:
    ranges = (
        alt.Chart(frame)
        .mark_rule(color="black", opacity=0.6)
        .encode(x=alt.X("class_name:N", sort=sort), y="min:Q", y2="max:Q")
    )
    chart = alt.layer(bars, ranges)
_common.chart(chart.properties(height=320, title="Per-class accuracy (line: range over models)"),
              key="classes_accuracy")

k_max = max(1, min(50, len(frame)))
k = st.slider("Classes to list", min_value=1, max_value=k_max, value=min(10, k_max), key="classes_k") \
    if k_max > 1 else 1
easiest, hardest = _frames.easiest_hardest(frame, k)
config = {
    "class_name": "class",
    "n_images": st.column_config.NumberColumn("images", format="%d"),
    **{c: st.column_config.NumberColumn(c, format="percent") for c in ("mean", "min", "max", *CATEGORIES)},
}
cols = st.columns(2)
with cols[0]:
    st.subheader("Easiest classes")
    st.dataframe(easiest, hide_index=True, key="classes_easiest", column_config=config)
with cols[1]:
    st.subheader("Hardest classes")
    st.dataframe(hardest, hide_index=True, key="classes_hardest", column_config=config)
st.caption("mean, min, max: accuracy over models; trivial / inconclusive / impossible: share of the class's images.")

st.subheader("The split within each class")
long = frame.melt(id_vars=["class_name", "rank", "n_images"], value_vars=list(CATEGORIES),
                  var_name="category", value_name="share")
stacked = (
    alt.Chart(long)
    .mark_bar()
    .encode(
        x=alt.X("class_name:N", sort=sort, title="classes, easiest first",
                axis=alt.Axis(labels=not many, ticks=not many, labelAngle=-60)),
        y=alt.Y("share:Q", title="share of the class's images", stack="normalize"),
        color=alt.Color("category:N", scale=_common.CATEGORY_SCALE,
                        sort=list(CATEGORIES)),
        order=alt.Order("category_order:Q"),
        tooltip=[alt.Tooltip("class_name:N", title="class"), alt.Tooltip("category:N"),
                 alt.Tooltip("share:Q", format=".1%"), alt.Tooltip("n_images:Q", title="images", format=",")],
    )
    .transform_calculate(
        category_order=f"indexof({list(CATEGORIES)}, datum.category)"
    )
    .properties(height=260)
)
_common.chart(stacked, key="classes_split")
st.caption(f"Category at tolerance {t} (set on Overview). " + _common.chart_help())
st.download_button(
    "Download per-class table (CSV)",
    _frames.to_csv_bytes(frame),
    file_name="per_class.csv",
    mime="text/csv",
    key="classes_download",
)

st.subheader("What the images are taken for")
st.markdown(
    "The ensemble confusion matrix: every model's final decision on every image, pooled. Each row is a true "
    "class, each column the class the models chose; the colour is the share of the row's decisions. On the "
    "impossible images it shows which classes they are taken for: one dark cell off the diagonal is a look-alike "
    "class (or a label that is likely wrong), a spread row an image that fits no class well."
)
subset = st.radio("Images", ["impossible", "all"], horizontal=True, key="classes_confusion_subset")
at_t = _common.at_tolerance(data)
table = at_t.table(CONFUSION_TABLES[subset], index_col=0)
confusion = _frames.confusion_long(table, data.class_names) if table is not None else pd.DataFrame()
if confusion.empty:
    st.info(f"No {subset} images at tolerance {t}.", icon=":material/info:")
    st.stop()
drawn = len(data.class_names) <= _charts.MATRIX_MAX_ROWS  # above, the matrix is listed, not drawn
if drawn:
    order = [c for c in data.class_names if c in set(confusion["true"])]
    n_shown = at_t.split.counts["impossible"] if subset == "impossible" else data.n_images
    tips = [alt.Tooltip("true:N", title="true class"), alt.Tooltip("predicted:N", title="taken for"),
            alt.Tooltip("decisions:Q", format=","), alt.Tooltip("share:Q", format=".1%")]
    cells = _charts.matrix_chart(
        confusion, order, columns=list(data.class_names), x="predicted", y="true", value="share",
        value_title="share of the row", scheme="orangered", tooltip=tips,
        title=f"{subset.capitalize()} images ({n_shown:,}): what each of {len(order)} true classes is taken for")
    cells = cells.encode(x=alt.X("predicted:N", sort=list(data.class_names), title="taken for (predicted class)",
                                 scale=alt.Scale(domain=list(data.class_names)),
                                 axis=alt.Axis(labelAngle=0 if len(data.class_names) <= 12 else -90,
                                               labelLimit=_charts.LABEL_LIMIT, labelOverlap=False)),
                         y=alt.Y("true:N", sort=order, title="true class", scale=alt.Scale(domain=order),
                                 axis=alt.Axis(labelLimit=_charts.LABEL_LIMIT, labelOverlap=False)))
    _common.chart(cells, key="classes_confusion", width="content")
else:
    st.caption(f"With {len(data.class_names):,} classes the matrix is too large to draw here; the table lists the "
               "most frequent confusions, and the report's confusion.png draws the whole matrix.")
off = confusion[confusion["true"] != confusion["predicted"]].nlargest(10 if drawn else 20, "decisions")
st.dataframe(off, hide_index=True, key="classes_top_confusions",
             column_config={"share": st.column_config.NumberColumn("share of the row", format="percent")})
st.caption(f"The most frequent confusions on {subset} images, pooled over {data.n_models} models "
           "(also in the report: confusion_all.csv, confusion_impossible.csv).")
