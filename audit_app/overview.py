"""Overview page: the key finding in one line, the DDD split and κ on all against inconclusive images, then the models.

The tolerance control re-splits the images from the stored n_correct counts and
sets the tolerance for every other page. UI only; the numbers come from `_frames`.
"""

import altair as alt
import pandas as pd
import streamlit as st

from audit.metrics import difficulty
from audit.metrics.difficulty import CATEGORIES
from audit.plots.style import REFERENCE_COLOURS
from audit.report import added_parts
from audit.report.text import headline
from audit_app import _charts, _common, _data, _frames

data = _common.require_audit()
_common.header("Overview", data, "Which images are trivial, impossible or inconclusive")

line = headline(data.summary)
if line:
    with st.container(key="overview_headline", border=True):
        st.markdown(f"**{line}**")
        st.caption(f"At the report's tolerance {data.tolerance}: images (nearly) every model gets right or wrong, "
                   "against independent models, and how alike the models err once those are set aside "
                   "(meding2022 §3).")

chance = _data.chance_warning(data)
if chance:
    st.warning(chance, icon=":material/warning:")

# ---- the split
st.subheader("Trivial, inconclusive and impossible images")
top = difficulty.max_tolerance(data.n_models)
if top == 0:
    st.session_state[_common.TOLERANCE_KEY] = 0
    st.caption(
        f"Tolerance 0, the only one possible with {data.n_models} model{'s' if data.n_models > 1 else ''}: "
        "an image is trivial when every model is right and impossible when every model is wrong."
    )
else:
    current = st.session_state.get(_common.TOLERANCE_KEY, data.tolerance)
    st.session_state[_common.TOLERANCE_KEY] = min(max(int(current), 0), top)
    st.slider(
        "Tolerance t",
        min_value=0,
        max_value=top,
        step=1,
        key=_common.TOLERANCE_KEY,
        persist_state="session",
        help=(
            f"Trivial: n_correct ≥ {data.n_models} − t; impossible: n_correct ≤ t. t = 1 is meding2022's "
            "SOTA analysis, t = 0 the strict definition. Applies to every page."
        ),
    )
t = _common.tolerance(data)
split = _frames.split_table(_common.at_tolerance(data))
cols = st.columns(3)
for col, category in zip(cols, CATEGORIES, strict=True):
    row = split.loc[category]
    col.metric(
        category.capitalize(),
        f"{100 * row['observed']:.1f}%",
        help=f"{int(row['images']):,} images. Independent models (binomial null) would give "
        f"{100 * row['binomial']:.1f}%; the beta-binomial fit {100 * row['beta_binomial']:.1f}%.",
    )
if top > 0:
    st.caption(
        f"Tolerance {t} of {data.n_models} models: trivial = at least {data.n_models - t} right, "
        f"impossible = at most {t} right."
    )

bars_frame, nulls_frame = _frames.histogram_frames(data, t)
log = st.toggle("Logarithmic image counts", key="overview_log")
y_scale = alt.Scale(type="symlog") if log else alt.Scale()
hist = (
    alt.Chart(bars_frame)
    .mark_bar(opacity=0.8)
    .encode(
        x=alt.X("n_correct:O", axis=_charts.models_axis(
            data.n_models, f"models of {data.n_models} that classify the image correctly (n_correct)")),
        y=alt.Y("images:Q", scale=y_scale, axis=_charts.count_axis("images")),
        color=alt.Color("category:N", scale=_common.CATEGORY_SCALE, title="observed"),
        tooltip=[
            alt.Tooltip("n_correct:O"),
            alt.Tooltip("images:Q", format=","),
            alt.Tooltip("share:Q", format=".2%"),
            alt.Tooltip("category:N"),
        ],
    )
)
curves = (
    alt.Chart(nulls_frame)
    .mark_line(point=True, strokeWidth=2)
    .encode(
        x="n_correct:O",
        y=alt.Y("images:Q", scale=y_scale),
        color=alt.Color(
            "null:N", title="null", scale=alt.Scale(domain=["binomial", "beta-binomial"],
                                          range=[REFERENCE_COLOURS["binomial"], REFERENCE_COLOURS["beta_binomial"]])
        ),
        strokeDash=alt.StrokeDash("null:N", legend=None),
        tooltip=[
            alt.Tooltip("null:N"),
            alt.Tooltip("n_correct:O"),
            alt.Tooltip("images:Q", title="expected images", format=",.1f"),
            alt.Tooltip("share:Q", format=".2%"),
        ],
    )
)
_common.chart(
    alt.layer(hist, curves)
    .resolve_scale(color="independent")
    .properties(height=360, title="n_correct histogram beside the binomial and beta-binomial nulls"),
    key="overview_histogram",
)
st.caption(
    "The binomial null treats every image as equally hard and the models as independent (meding2022 "
    "Fig. 2, 17); the beta-binomial lets the difficulty vary between images. " + _common.chart_help()
)
shares = split.rename(columns={"beta_binomial": "beta-binomial"}).reset_index()
st.dataframe(
    shares,
    hide_index=True,
    key="overview_split",
    column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in ("observed", "binomial", "beta-binomial")
    },
)
bb = (data.summary.get("nulls") or {}).get("beta_binomial")
if bb:
    st.caption(
        f"Beta-binomial fit: α = {bb['alpha']:.3g}, β = {bb['beta']:.3g}, mean accuracy {bb['mean']:.3f}, "
        f"overdispersion ρ = {bb['overdispersion']:.3f} (0 = binomial, 1 = every image all-or-nothing)."
    )

# ---- κ on all images against κ on the inconclusive ones (meding2022 Fig. 6)
ec = data.summary.get("error_consistency") or {}
if "all" in ec:
    st.subheader("Error consistency: all images against the inconclusive ones")
    pair = st.columns(2)
    for col, subset, label in ((pair[0], "all", "all images"), (pair[1], "inconclusive", "inconclusive images")):
        if subset not in ec:
            col.metric(f"Mean κ on {label}", "-", help="No such images at the report's tolerance.")
            continue
        entry = ec[subset]
        ci = f"; 95% interval {entry['ci95'][0]:.2f}–{entry['ci95'][1]:.2f}" if "ci95" in entry else ""
        delta = None if subset == "all" else f"{entry['mean'] - ec['all']['mean']:+.2f} against all images"
        col.metric(f"Mean κ on {label}", f"{entry['mean']:.2f}", delta=delta, delta_color="off",
                   help=f"Mean error consistency over pairs of models, on {entry['n_images']:,} images{ci}.")
    st.caption("κ near 1: the models err on the same images; near 0: independently. A drop on the inconclusive "
               "images means the trivial and impossible images hide how far the models differ. "
               "The Consistency page shows every pair.")

# ---- models
st.subheader("Models")
facts = st.columns([1, 1, 1, 2])  # the status, e.g. "interrupted (3/8)", needs room
facts[0].metric("Images", f"{data.n_images:,}")
facts[1].metric("Classes", f"{data.n_classes:,}")
facts[2].metric("Models", f"{data.n_models}", help="Finished models; a running audit adds more.")
facts[3].metric("Status", _data.status_label(data), help="Finished jobs of all jobs in the audit.")
models = data.models.assign(accuracy_pct=100 * data.models["accuracy"].astype(float))
left, right = st.columns([3, 2])
with left:
    if len(models) > _frames.HEATMAP_MAX_MODELS:  # a zoo: how accuracies spread, not a bar per model
        bars = (
            alt.Chart(models)
            .mark_bar()
            .encode(
                x=alt.X("accuracy_pct:Q", bin=alt.Bin(step=1), title="accuracy at the final epoch (%, bins of 1)"),
                y=alt.Y("count():Q", axis=_charts.count_axis("models")),
                color=alt.Color("group:N", title="group", scale=_common.condition_scale(models["group"])),
                tooltip=[alt.Tooltip("count():Q", title="models"), alt.Tooltip("group:N")],
            )
            .properties(height=280, title=f"Accuracy of the {len(models):,} models (the table lists each)")
        )
    else:
        bars = None
    bars = bars if bars is not None else (
        alt.Chart(models)
        .mark_bar()
        .encode(
            x=alt.X("accuracy_pct:Q", title="accuracy at the final epoch (%)", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("name:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
            color=alt.Color("group:N", title="group", scale=_common.condition_scale(models["group"])),
            tooltip=[
                alt.Tooltip("name:N", title="model"),
                alt.Tooltip("group:N"),
                alt.Tooltip("kind:N"),
                alt.Tooltip("accuracy_pct:Q", title="accuracy (%)", format=".2f"),
                alt.Tooltip("recorded_epochs:Q", title="recorded epochs"),
            ],
        )
        .properties(height=alt.Step(18), title="Accuracy of each model")
    )
    _common.chart(bars, key="overview_accuracy_chart")
with right:
    st.dataframe(
        models[["name", "accuracy_pct", "kind", "recorded_epochs"]],
        hide_index=True,
        key="overview_models",
        column_config={
            "name": "model",
            "accuracy_pct": st.column_config.ProgressColumn("accuracy", format="%.1f%%", min_value=0, max_value=100),
            "recorded_epochs": st.column_config.NumberColumn("epochs", help="Recorded epochs, epoch 0 included"),
        },
    )

# ---- humans beside the models (imported audits with human observers)
humans = _frames.human_frames(data.summary)
if humans is not None:
    st.subheader("Humans beside the models")
    st.caption(f"The split is the models' (tolerance {data.tolerance}); each human's accuracy counts their own "
               "decisions, and κ between two makers uses the images both decided (meding2022 §4).")
    cols = st.columns(3)
    for col, row in zip(cols, humans["by_category"].itertuples(), strict=True):
        col.metric(f"Humans on {row.category} images", "-" if pd.isna(row.accuracy) else f"{100 * row.accuracy:.1f}%",
                   help=f"{row.decisions:,} decisions; 95% Wilson interval "
                        f"{'-' if pd.isna(row.low) else f'{100 * row.low:.1f}–{100 * row.high:.1f}%'}")
    st.dataframe(humans["consistency"], hide_index=True, key="overview_human_kappa")
    if len(humans["by_condition"]):
        st.dataframe(humans["by_condition"], hide_index=True, key="overview_by_condition", column_config={
            c: st.column_config.NumberColumn(c.replace("_", " "), format="percent")
            for c in ("trivial", "inconclusive", "impossible", "model_accuracy", "human_accuracy")})
    with st.expander("Each human"):
        st.dataframe(humans["makers"], hide_index=True, key="overview_humans")

# ---- report parts registered beside the tool's own (`audit.report.register_part`)
for part in added_parts():
    lines = part.summary_lines(data.summary) if part.summary_lines is not None else []
    if lines:
        st.subheader(lines[0])
        st.code("\n".join(lines[1:]) or lines[0], language=None)

if not data.complete or data.failures:
    with st.expander("Jobs", expanded=bool(data.failures)):
        st.dataframe(_data.job_table(data), hide_index=True, key="overview_jobs")
if data.notes:
    with st.expander("Notes"):
        for note in data.notes:
            st.markdown(f"- {note}")
