"""Dynamics page: how decisions change over the epochs of training.

Decision maps for one model and for all (aggregated to screen resolution), swaps
per epoch, the TP-agreement distribution per epoch beside its null, and the
learned-epoch and Accessibility views (meding2022 Fig. 4, 5, 12; hacohen2020 §2-3).
"""

import altair as alt
import streamlit as st

from audit_app import _charts, _common, _frames

data = _common.require_audit()
_common.header("Dynamics", data, "How the decisions change while the models train")
dyn = data.dynamics
if not dyn:
    st.warning(
        "No model in this audit has more than one recorded epoch (epoch 0 is before training), so there "
        "are no learning dynamics to show. Pretrained models record a single epoch; trained variants "
        "record one per epoch, e.g. `ddd-audit run --dataset digits --variants minimal --epochs 5`."
    )
    st.stop()
stamp = _common.stamp_of(data)
t = _common.tolerance(data)
models = list(dyn["models"])
epochs = list(dyn["epochs"])
_common.notes(data, "dynamics", "epochs")


def decision_map(frame, title: str, scheme: str):
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("epoch:O", title="epoch"),
            y=alt.Y("top:Q", axis=_charts.count_axis(f"image rank of {data.n_images:,} (easiest first)"),
                    scale=alt.Scale(domain=[0, data.n_images], reverse=True, nice=False)),
            y2="last:Q",
            color=alt.Color("share:Q", title="share correct", scale=alt.Scale(scheme=scheme, domain=[0, 1])),
            tooltip=[
                alt.Tooltip("first:Q", title="from image rank", format=","),
                alt.Tooltip("last:Q", title="to image rank", format=","),
                alt.Tooltip("epoch:O"),
                alt.Tooltip("share:Q", title="share correct", format=".1%"),
            ],
        )
        .transform_calculate(top="datum.first - 1")
        .properties(height=340, title=title)
    )


# ---- decision maps
st.subheader("Decision maps")
st.markdown(
    "Each row is a bin of images ordered by mean accuracy (easiest on top), each column an epoch; "
    f"the colour is the share of correct decisions. {data.n_images:,} images are aggregated to at most "
    f"{_frames.MAP_ROWS} rows."
)
model = st.selectbox(
    "Model for the left map", models, index=models.index(dyn["base_model"]), key="dynamics_model",
    help="Its own decisions at every epoch it recorded; the right map pools every model with several epochs.",
)
if model == dyn["base_model"] and "base" in data.maps:
    map_epochs, share = epochs, data.maps["base"]
else:
    map_epochs, share = _common.model_map(data.path, stamp, model)
cols = st.columns(2)
with cols[0]:
    frame = _frames.map_long(share, map_epochs, data.n_images)
    _common.chart(decision_map(frame, f"One model: {model}", "blues"), key="dynamics_map_model")
with cols[1]:
    if "all" in data.maps:
        frame = _frames.map_long(data.maps["all"], epochs, data.n_images)
        pooled = f"All {len(models)} models" if len(models) > 1 else "The one model with several epochs"
        _common.chart(decision_map(frame, pooled, "reds"), key="dynamics_map_all")
st.caption(_common.chart_help())

# ---- swaps per epoch
if "swaps" in data.tables:
    st.subheader("Swaps per epoch")
    st.markdown(
        "The share of images whose decision (right or wrong) changes from one epoch to the next "
        "(meding2022 Fig. 12)."
    )
    swaps = _frames.swaps_long(data)
    lines = (
        alt.Chart(swaps)
        .mark_line(point=alt.OverlayMarkDef(size=12))
        .encode(
            x=alt.X("epoch_from:Q", title="epoch e (change from e to the next recorded epoch)",
                    axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("percent:Q", title="decisions that swap (% of images)"),
            detail="model:N",
            color=alt.Color(
                "series:N", title=None,
                scale=alt.Scale(domain=["one model", "mean over models"], range=["#9e9e9e", "#d62728"]),
            ),
            strokeWidth=alt.condition(alt.datum.series == "mean over models", alt.value(3), alt.value(1)),
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("epoch_from:Q", title="from epoch"),
                alt.Tooltip("epoch_to:Q", title="to epoch"),
                alt.Tooltip("swaps:Q", title="images", format=",.0f"),
                alt.Tooltip("percent:Q", title="% of images", format=".2f"),
            ],
        )
        .properties(height=300)
    )
    _common.chart(lines, key="dynamics_swaps")

# ---- TP-agreement per epoch
st.subheader("TP-agreement per epoch")
st.markdown(
    "TP-agreement is the share of models that classify an image correctly. Independent models of the "
    "same accuracies would give the null distribution (Poisson-binomial); real models pile images up at "
    "0 and 1 (hacohen2020 Fig. 3)."
)
hist = _frames.tp_agreement_frame(data)
shown_epoch = st.select_slider("Epoch", options=epochs, value=epochs[-1], key="dynamics_epoch")
at_epoch = hist[hist["epoch"] == shown_epoch]
cols = st.columns(2)
with cols[0]:
    bars = (
        alt.Chart(at_epoch)
        .mark_bar(opacity=0.75, color="#1f77b4")
        .encode(
            x=alt.X("n_right:O", axis=_charts.models_axis(
                len(models), f"models right of {len(models)} (TP-agreement × {len(models)})")),
            y=alt.Y("observed:Q", axis=_charts.count_axis("images")),
            tooltip=[
                alt.Tooltip("n_right:Q", title="models right"),
                alt.Tooltip("tp_agreement:Q", format=".3f"),
                alt.Tooltip("observed:Q", title="images", format=","),
                alt.Tooltip("null:Q", title="null (expected)", format=",.1f"),
            ],
        )
    )
    null = (
        alt.Chart(at_epoch)
        .mark_line(color="#ff7f0e", point=True, strokeDash=[4, 2])
        .encode(x="n_right:O", y="null:Q", tooltip=[alt.Tooltip("null:Q", title="null", format=",.1f")])
    )
    _common.chart(
        alt.layer(bars, null).properties(height=300, title=f"Epoch {shown_epoch}: observed (bars), null (orange)"),
        key="dynamics_tp_epoch",
    )
with cols[1]:
    if "tp_by_epoch" in data.tables:
        bim = data.tables["tp_by_epoch"].melt(
            id_vars=["epoch"], value_vars=["bimodality", "bimodality_null"], var_name="series", value_name="score"
        )
        bim["series"] = bim["series"].map({"bimodality": "observed", "bimodality_null": "null"})
        line = (
            alt.Chart(bim.dropna())
            .mark_line(point=True)
            .encode(
                x=alt.X("epoch:Q", axis=alt.Axis(format="d", tickMinStep=1)),
                y=alt.Y("score:Q", title="kurtosis − skewness² − 1 (lower = more bimodal)",
                        axis=alt.Axis(format=".2f")),
                color=alt.Color(
                    "series:N", title=None, scale=alt.Scale(domain=["observed", "null"], range=["#1f77b4", "#ff7f0e"])
                ),
                tooltip=[alt.Tooltip("series:N"), alt.Tooltip("epoch:Q"), alt.Tooltip("score:Q", format=".3f")],
            )
            .properties(height=300, title="Pearson bimodality of TP-agreement")
        )
        _common.chart(line, key="dynamics_bimodality")
heat = hist.melt(id_vars=["epoch", "tp_agreement", "n_right"], value_vars=["observed", "null"],
                 var_name="distribution", value_name="images")
heat["log_images"] = (heat["images"] + 1).clip(lower=1)
grid = (
    alt.Chart(heat)
    .mark_rect()
    .transform_calculate(low="datum.n_right - 0.5", high="datum.n_right + 0.5")
    .encode(
        x=alt.X("epoch:O", title="epoch"),
        y=alt.Y("low:Q", title="models right (TP-agreement × models)", scale=alt.Scale(nice=False),
                axis=alt.Axis(format="d", tickMinStep=1)),
        y2="high:Q",
        color=alt.Color("log_images:Q", title="images + 1", scale=alt.Scale(type="log", scheme="magma")),
        column=alt.Column("distribution:N", title=None, sort=["observed", "null"]),
        tooltip=[
            alt.Tooltip("distribution:N"),
            alt.Tooltip("epoch:O"),
            alt.Tooltip("tp_agreement:Q", format=".3f"),
            alt.Tooltip("images:Q", format=",.1f"),
        ],
    )
    .properties(height=260, width=360)
)
_common.chart(grid, key="dynamics_tp_grid")

# ---- learned epoch and accessibility
if "learned_epoch" in data.images.columns and "accessibility" in data.images.columns:
    st.subheader("When images are learned")
    st.markdown(
        "Learned epoch: the first epoch from which an image stays correct (median over models; "
        "*never* when most models get it wrong at the end). Accessibility: TP-agreement averaged over "
        "epochs, high = learned early by many models (hacohen2020 §2, Fig. 6)."
    )
    cols = st.columns(2)
    with cols[0]:
        learned = _frames.learned_epoch_frame(data, t)
        sort = list(dict.fromkeys(learned["learned"]))
        chart = (
            alt.Chart(learned)
            .mark_bar()
            .encode(
                x=alt.X("learned:N", sort=sort, title="learned epoch (median over models)"),
                y=alt.Y("images:Q", stack=True, axis=_charts.count_axis("images")),
                color=alt.Color("category:N", scale=_common.CATEGORY_SCALE),
                tooltip=[alt.Tooltip("learned:N", title="learned epoch"), alt.Tooltip("category:N"),
                         alt.Tooltip("images:Q", format=",")],
            )
            .properties(height=300, title="Learned epoch")
        )
        _common.chart(chart, key="dynamics_learned")
    with cols[1]:
        access = _frames.score_histogram(data, "accessibility", t)
        chart = (
            alt.Chart(access)
            .mark_bar()
            .encode(
                x=alt.X("low:Q", bin="binned", title="Accessibility", scale=alt.Scale(domain=[0, 1])),
                x2="high:Q",
                y=alt.Y("images:Q", stack=True, axis=_charts.count_axis("images")),
                color=alt.Color("category:N", scale=_common.CATEGORY_SCALE),
                tooltip=[alt.Tooltip("low:Q", title="from", format=".2f"), alt.Tooltip("high:Q", title="to", format=".2f"),
                         alt.Tooltip("category:N"), alt.Tooltip("images:Q", format=",")],
            )
            .properties(height=300, title="Accessibility")
        )
        _common.chart(chart, key="dynamics_accessibility")
    st.caption(f"Colours: category at tolerance {t} (set on Overview).")
