"""Consistency page: error-consistency matrices on all images and on the inconclusive subset.

Side by side, in a chosen model order, with hover values and the mean kappa
within and between groups of variants (meding2022 §3.3, Fig. 6). UI only.
"""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from audit_app import _charts, _common, _frames

data = _common.require_audit()
_common.header("Consistency", data, "Do the models err on the same images?")
st.markdown(
    "Error consistency κ compares two models' right/wrong decisions image by image, corrected for the "
    "agreement their accuracies alone would give: κ = 0 for independent errors, 1 for identical ones. "
    "On all images the trivial and impossible ones make κ high; on the inconclusive images alone it "
    "falls towards 0 (meding2022 Fig. 6)."
)
if data.n_models < 2:
    st.warning(
        "This audit has one finished model. Error consistency compares pairs of models, so it needs at "
        "least two."
    )
    st.stop()
if "ec_all" not in data.tables:
    st.warning("The report has no error-consistency table for this audit.")
    _common.notes(data, "error consistency")
    st.stop()

t = _common.tolerance(data)
kappa_all = data.tables["ec_all"]
at_t = _common.at_tolerance(data)
kappa_inc = at_t.tables.get("ec_inconclusive")
n_inconclusive = at_t.split.counts["inconclusive"]

many = len(kappa_all) > _charts.MATRIX_MAX_ROWS
order_by = st.selectbox(
    "Model order",
    _frames.ORDERINGS,
    index=_frames.ORDERINGS.index("clustered") if many else 0,
    key="consistency_order",
    help="Clustered: models that err on the same images (on all images) sit together.",
)
order = _frames.model_order(kappa_all, data.models, order_by)

matrices = [("All images", kappa_all, data.n_images)]
matrices.append(("Inconclusive images", kappa_inc, n_inconclusive))
values = np.concatenate([k.to_numpy(dtype=float)[~np.eye(len(k), dtype=bool)] for _, k, _ in matrices
                         if k is not None])
values = values[np.isfinite(values)]
reach = max(float(np.abs(values).max()) if values.size else 1.0, 0.05)
# side by side while both fit beside each other, one under the other beyond that
side_by_side = len(order) * _charts.cell_size(len(order)) <= 400

cols = st.columns(2) if side_by_side else [st.container(), st.container()]
for col, (title, kappa, n_images) in zip(cols, matrices, strict=True):
    with col:
        if kappa is None:
            st.markdown(f"**{title}**")
            st.info(f"No inconclusive images at tolerance {t}, so there is no matrix on them.")
            continue
        if many:  # an image, one pixel per pair; the pairs of one model are in the table below
            off = kappa.to_numpy(dtype=float)[~np.eye(len(kappa), dtype=bool)]
            st.markdown(f"**{title}: mean κ {np.nanmean(off):.3f} ({n_images:,} images)**")
            st.image(_frames.matrix_image(kappa, order, reach), width="stretch",
                     caption=f"{len(order):,} models in {order_by} order")
            continue
        long = _frames.matrix_long(kappa, order, data.models)
        off = long["kappa"].to_numpy()
        mean = float(np.nanmean(off)) if off.size else float("nan")
        tips = [alt.Tooltip("model_a:N", title="model"), alt.Tooltip("model_b:N", title="with"),
                alt.Tooltip("kappa:Q", title="κ", format=".3f"), alt.Tooltip("group_a:N", title="group"),
                alt.Tooltip("group_b:N", title="with group")]
        heat = _charts.matrix_chart(long, order, x="model_b", y="model_a", value="kappa", value_title="κ",
                                    scheme="redblue", domain=(-reach, reach), tooltip=tips,
                                    title=f"{title}: mean κ {mean:.3f} ({n_images:,} images, {len(order)} models)")
        _common.chart(heat, width="content", key=f"consistency_heat_{title.split()[0].lower()}")
st.caption(
    "Blue = the models err on the same images, red = on different ones; the diagonal (a model with "
    f"itself) is left blank. Inconclusive at tolerance {t} (set on Overview). "
    + (f"Colour scale from -{reach:.2f} (red) to +{reach:.2f} (blue). " if many else _common.chart_help())
)
if many:
    model = st.selectbox("The models most and least alike one model", order, key="consistency_model")
    cols = st.columns(2)
    for col, (title, kappa, _) in zip(cols, matrices, strict=True):
        if kappa is not None:
            col.markdown(f"**{title}**")
            col.dataframe(_frames.nearest_models(kappa, model), hide_index=True, key=f"consistency_near_{title[:3]}",
                          column_config={"kappa": st.column_config.NumberColumn("κ", format="%.3f")})

ec = data.summary.get("error_consistency") or {}
if t == data.tolerance and ec:
    lines = []
    for subset, label in (("all", "all images"), ("inconclusive", "inconclusive images")):
        if subset in ec:
            e = ec[subset]
            ci = f", 95% CI [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]" if "ci95" in e else ""
            lines.append(f"- {label}: mean κ = {e['mean']:.3f}{ci} (n = {e['n_images']:,})")
    st.markdown("\n".join(lines))

st.subheader("Within and between groups of variants")
st.markdown(
    "Variants in one group differ in a single setting (meding2022 A.1). If such a setting mattered, "
    "models of one group would agree more with each other than with the rest."
)
rows, tables = [], []
for title, kappa, _ in matrices:
    if kappa is None:
        continue
    table, overall = _frames.group_means(kappa, data.models)
    rows.append({"images": title.lower(), "within groups": overall["within"], "pairs within": overall["within_pairs"],
                 "between groups": overall["between"], "pairs between": overall["between_pairs"]})
    tables.append((title, table))
st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    key="consistency_groups_overall",
    column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in ("within groups", "between groups")},
)
with st.expander("Mean κ for every pair of groups"):
    cols = st.columns(len(tables))
    for col, (title, table) in zip(cols, tables, strict=True):
        col.markdown(f"**{title}**")
        col.dataframe(
            table,
            hide_index=True,
            key=f"consistency_groups_{title.split()[0].lower()}",
            column_config={"mean_kappa": st.column_config.NumberColumn("mean κ", format="%.3f")},
        )
