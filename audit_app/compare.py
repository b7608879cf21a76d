"""Compare page: do two groups of models learn the images in the same order?

The Accessibility scatter of group A against group B and the accuracy-matched
counts of their majority-vote ensembles (hacohen2020 §4.1, Fig. 8). UI only.
"""

import altair as alt
import pandas as pd
import streamlit as st

from audit.report import count_noun
from audit_app import _charts, _common, _image_frames

data = _common.require_audit()
_common.header("Compare", data, "Do two groups of models learn the same images first?")
st.markdown(
    "Accessibility is an image's TP-agreement averaged over the epochs: high when many models learn it "
    "early. If two groups learn in the same order, their Accessibility scores correlate (hacohen2020 "
    "Fig. 8b–d). The accuracy-matched counts compare the groups' majority-vote ensembles at epochs where "
    "both reach the same accuracy (±1 %, Fig. 8a)."
)
dyn = data.dynamics
models = list(dyn["models"]) if dyn else []
if len(models) < 2:
    st.warning(
        "Comparing groups needs at least two models with several recorded epochs; this audit has "
        f"{len(models)}. Trained variants record every epoch (e.g. `--variants minimal`); pretrained "
        "models record only epoch 0."
    )
    st.stop()
skipped = [m for m in data.model_names if m not in models]
if skipped:
    st.caption(f"Left out (a single recorded epoch): {', '.join(skipped)}.")

group_of = dict(zip(data.models["name"], data.models["group"], strict=False))
mode = st.radio("Groups", _image_frames.COMPARE_MODES, key="compare_mode", horizontal=True)
half_a, half_b = _image_frames.default_groups(models)
if mode == "split half":
    group_a, group_b = half_a, half_b
    st.caption("Alternating models: A takes the 1st, 3rd, … and B the 2nd, 4th, … (as the report's split-half r).")
elif mode == "by variant group":
    names = sorted({group_of.get(m, "") for m in models})
    if len(names) < 2:
        st.info("All these models are in one variant group; use split half or custom groups.")
        st.stop()
    chosen = st.selectbox("Group A is the variant group", names, key="compare_group")
    group_a = [m for m in models if group_of.get(m, "") == chosen]
    group_b = [m for m in models if group_of.get(m, "") != chosen]
else:
    cols = st.columns(2)
    group_a = cols[0].multiselect("Group A", models, default=half_a, key="compare_a")
    group_b = cols[1].multiselect("Group B", models, default=half_b, key="compare_b")
if not group_a or not group_b:
    st.info("Choose at least one model for each group.")
    st.stop()
overlap = sorted(set(group_a) & set(group_b))
if overlap:
    st.warning(f"The groups share {', '.join(overlap)}; shared models make them look more alike.")
st.caption(f"Group A: {count_noun(len(group_a), 'model')} · Group B: {count_noun(len(group_b), 'model')}")

result = _common.compare_groups(data.path, _common.stamp_of(data), tuple(group_a), tuple(group_b))
corr = result["correlation"]
t = _common.tolerance(data)
facts = st.columns(3)
facts[0].metric("Pearson r of Accessibility", "–" if pd.isna(corr["r"]) else f"{corr['r']:.3f}",
                help="hacohen2020 report 0.99 for two groups of ResNet-50 on ImageNet.")
p_value = corr["p_value"]
facts[1].metric("p-value", "–" if pd.isna(p_value) else "< 1e-300" if p_value == 0 else f"{p_value:.2g}",
                help="Two-sided, for r = 0.")
facts[2].metric("Images", f"{corr['n_images']:,}")

left, right = st.columns(2)
with left:
    frame, binned = _image_frames.accessibility_points(data, result["accessibility_a"], result["accessibility_b"], t)
    diagonal = alt.Chart(pd.DataFrame({"a": [0, 1], "b": [0, 1]})).mark_line(color="grey", strokeDash=[4, 3]).encode(
        x="a:Q", y="b:Q"
    )
    if binned:
        points = (
            alt.Chart(frame)
            .mark_rect()
            .encode(
                x=alt.X("a_low:Q", title="Accessibility, group A", scale=alt.Scale(domain=[0, 1])),
                x2="a_high:Q",
                y=alt.Y("b_low:Q", title="Accessibility, group B", scale=alt.Scale(domain=[0, 1])),
                y2="b_high:Q",
                color=alt.Color("images:Q", scale=alt.Scale(type="log", scheme="viridis")),
                tooltip=[alt.Tooltip("a_low:Q", title="A from", format=".2f"),
                         alt.Tooltip("a_high:Q", title="A to", format=".2f"),
                         alt.Tooltip("b_low:Q", title="B from", format=".2f"),
                         alt.Tooltip("b_high:Q", title="B to", format=".2f"),
                         alt.Tooltip("images:Q", format=",.0f")],
            )
        )
        title = f"Accessibility, {data.n_images:,} images binned"
    else:
        points = (
            alt.Chart(frame)
            .mark_circle(opacity=0.55)
            .encode(
                x=alt.X("a:Q", title="Accessibility, group A", scale=alt.Scale(domain=[0, 1])),
                y=alt.Y("b:Q", title="Accessibility, group B", scale=alt.Scale(domain=[0, 1])),
                size=alt.Size("images:Q", scale=alt.Scale(range=[15, 600]), title="images"),
                color=alt.Color("category:N", scale=_common.CATEGORY_SCALE),
                tooltip=[alt.Tooltip("a:Q", title="A", format=".3f"), alt.Tooltip("b:Q", title="B", format=".3f"),
                         alt.Tooltip("category:N"), alt.Tooltip("images:Q", format=",")],
            )
        )
        title = "Accessibility of every image (area = images)"
    _common.chart(alt.layer(points, diagonal).properties(height=380, title=title), key="compare_scatter")
with right:
    matched = result["matched"]
    problem = _image_frames.matched_problem(matched, data, group_a, group_b)
    if problem:
        st.info(problem, icon=":material/info:")
    else:
        long = _image_frames.matched_long(matched)
        lines = (
            alt.Chart(long)
            .mark_line(point=True)
            .encode(
                x=alt.X("accuracy_a:Q", title="accuracy of group A's ensemble", axis=alt.Axis(format=".0%")),
                y=alt.Y("images:Q", axis=_charts.count_axis("images classified correctly")),
                color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                                scale=alt.Scale(domain=["both groups", "only group A", "only group B"],
                                                range=["#1f77b4", "#2ca02c", "#d62728"])),
                strokeDash=alt.StrokeDash("series:N", legend=None),
                tooltip=[alt.Tooltip("series:N"), alt.Tooltip("images:Q", format=","),
                         alt.Tooltip("epoch_a:Q", title="epoch A"), alt.Tooltip("epoch_b:Q", title="epoch B"),
                         alt.Tooltip("accuracy_a:Q", title="accuracy A", format=".1%"),
                         alt.Tooltip("accuracy_b:Q", title="accuracy B", format=".1%"),
                         alt.Tooltip("beyond:N", title="B converged")],
            )
        )
        layers = [lines]
        if matched["beyond"].any():
            edge = pd.DataFrame({"x": [float(matched.loc[matched["beyond"], "accuracy_b"].max())]})
            layers.append(alt.Chart(edge).mark_rule(color="black", strokeDash=[6, 4]).encode(x="x:Q"))
        _common.chart(alt.layer(*layers).properties(height=380, title="Accuracy-matched counts"),
                      key="compare_matched")
        if matched["beyond"].any():
            st.caption("Right of the dashed line group B has converged and its final epoch is used.")
st.caption(_common.chart_help())
if not result["matched"].empty:
    with st.expander("Matched epochs"):
        st.dataframe(
            result["matched"], hide_index=True, key="compare_table",
            column_config={c: st.column_config.NumberColumn(c, format="percent") for c in ("accuracy_a", "accuracy_b")},
        )
