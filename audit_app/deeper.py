"""Deeper measures page: what the models share inside, and how other difficulty measures see the split.

One section per measure, each read from the report (`audit.report`): representational similarity
(RSA, linear CKA; meding2022 A.3), training-dynamics scores, the stability of the split, prediction
depth (baldock2021), learnability (sharma2018) and label issues (cleanlab). A measure the audit does
not have gets a note on how to add it. UI only; the frames come from `_frames`.
"""

import altair as alt
import streamlit as st

from audit.store import DEEP_TABLES, SCORE_TABLES
from audit_app import _charts, _common, _frames

data = _common.require_audit()
_common.header("Deeper measures", data, "Do the models agree inside, and do other difficulty measures agree?")
summary = data.summary
st.markdown(
    "Sections: [Representational similarity](#representational-similarity) · "
    "[Training-dynamics scores](#training-dynamics-scores) · [Stability of the split](#stability-of-the-split) · "
    "[Prediction depth](#prediction-depth) · [Learnability](#learnability) · [Label issues](#label-issues)"
)


def absent(text: str) -> None:
    st.info(text, icon=":material/info:")


def heatmap(long, title: str, key: str, domain=(0, 1), what: str = "model") -> None:
    """A square matrix in long form (row, column, value): a chart with square cells of at least
    `_charts.MIN_CELL` px, or above `_charts.MATRIX_MAX_ROWS` rows an image of it."""
    order = list(dict.fromkeys(long["row"]))
    scheme = "viridis" if domain[0] >= 0 else "redblue"
    if len(order) > _charts.MATRIX_MAX_ROWS:
        values = long.pivot(index="row", columns="column", values="value").loc[order, order].to_numpy(float)
        st.markdown(f"**{title}**")
        st.image(_charts.matrix_picture(values, cmap="viridis" if scheme == "viridis" else "RdBu", domain=domain),
                 width="content", caption=f"{len(order):,} {what}s in the report's order; colour from "
                 f"{domain[0]:g} to {domain[1]:g}. The report's CSV holds the values.")
        return
    tips = [alt.Tooltip("row:N", title=what), alt.Tooltip("column:N", title=what), alt.Tooltip("value:Q", format=".3f")]
    spec = _charts.matrix_chart(long, order, title=title, scheme=scheme, domain=domain, tooltip=tips)
    _common.chart(spec, key=key, width="content")


# ---- representational similarity (meding2022 A.3, Fig. 7; linear CKA)
st.header("Representational similarity")
rsa = _frames.representation_frames(data)
if rsa is None:
    absent(
        "No representations were captured for this audit, so there is no RSA or CKA. `ddd-audit run` stores "
        "the penultimate layer's Gram matrix of each trained variant and pretrained model (on at most "
        "`--rsa-images` validation images); audits run before that, or imported from decisions, have none."
    )
else:
    st.markdown(
        "Do the models represent the images alike, not only decide alike? **RSA**: Spearman's correlation of "
        "two models' dissimilarity matrices (1 − Pearson correlation between images; meding2022 A.3). "
        "**CKA**: linear centred kernel alignment (1 = the same representation up to rotation and scale). "
        f"On {rsa['n_images']:,} validation images; the inconclusive ones are those of the report's split."
    )
    measure = st.radio("Measure", list(rsa["measures"]), horizontal=True, key="deeper_rsa_measure")
    subset = st.radio("Images", list(rsa["subsets"]), horizontal=True, key="deeper_rsa_subset")
    matrix = rsa["matrices"].get((measure, subset))
    if matrix is None:
        absent(f"No {measure} on {subset} images (too few of them among the captured images).")
    else:
        n = matrix["row"].nunique()
        heatmap(matrix, f"{measure} between {n} models, {subset} images", key="deeper_rsa_matrix")
    vs = rsa["vs_base"]
    if not vs.empty:
        bars = alt.Chart(vs).mark_bar().encode(
            x=alt.X("model:N", sort=list(dict.fromkeys(vs["model"])), title=None,
                    axis=alt.Axis(labelAngle=-60, labelLimit=_charts.LABEL_LIMIT, labels=vs["model"].nunique() <= 60)),
            xOffset="images:N",
            y=alt.Y("value:Q", title="similarity to the base model", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("images:N", title="images"),
            row=alt.Row("measure:N", title=None),
            tooltip=["model:N", "measure:N", "images:N", alt.Tooltip("value:Q", format=".3f")],
        ).properties(height=180, title=f"Each of {vs['model'].nunique()} models against the base model (meding2022 Fig. 7)")
        _common.chart(bars, key="deeper_rsa_vs_base")
    st.caption(_common.chart_help())
st.page_link(_common.page_file("classes.py"), label="What impossible images are taken for (the ensemble confusion matrix): "
             "Classes", icon=":material/category:")

# ---- training-dynamics scores (cartography, EL2N, AUM, forgetting, first-learned epoch)
st.header("Training-dynamics scores")
scores = summary.get("training_scores")
rho = _frames.report_file(data, SCORE_TABLES["score_correlation"], index_col=0)
if not scores or rho is None:
    absent("This audit has no training-dynamics scores in its report: they need models with several recorded "
           "epochs (rebuild the report with `ddd-audit report`).")
else:
    el2n = f"; EL2N at epoch {scores['el2n_epoch']}" if scores.get("el2n_epoch") is not None else \
        " (EL2N and AUM need the margins that newer audits record)"
    st.markdown(
        f"Per-image difficulty scores of data pruning and label-noise work, over {len(scores['models'])} models "
        f"and epochs {scores['epochs'][0]}-{scores['epochs'][1]}{el2n}, on held-out images (the papers score "
        "training images). Spearman's ρ with DDD's n_correct says how far each orders the images like the split."
    )
    heatmap(_frames.matrix_long_form(rho), f"Spearman's ρ between {len(rho)} per-image scores",
            key="deeper_score_rho", domain=(-1, 1), what="score")
    if {"cartography_variability", "cartography_confidence", "category"} <= set(data.images.columns):
        points = data.images[["cartography_variability", "cartography_confidence", "category"]].rename(
            columns=lambda c: c.removeprefix("cartography_"))
        points = points.dropna().sample(min(len(points.dropna()), 5000), random_state=0)
        cmap = _charts.cartography_chart(points, data.n_images)
        _common.chart(cmap, key="deeper_cartography")
    st.caption(_common.chart_help())

# ---- stability of the split under resampled models
st.header("Stability of the split")
stability = summary.get("stability")
curve = _frames.report_file(data, SCORE_TABLES["stability"])
if not stability or curve is None:
    absent("This audit's report has no resampling of its models (it needs at least three models; rebuild the "
           "report with `ddd-audit report`).")
else:
    st.markdown(f"**{stability['recommendation'][0].upper()}{stability['recommendation'][1:]}.**")
    st.markdown(
        f"Each point: {stability['n_draws']} random subsets of that many of the audit's models, the split of "
        "each, and the 95% band over them; dashed: the zero-and-one-inflated beta-binomial fit of the "
        "n_correct histogram, whose projection beyond the audit's models is given under the chart."
    )
    long = _frames.stability_long_form(curve)
    _common.chart(_charts.stability_chart(long, data.n_models), key="deeper_stability")
    projection = _charts.stability_projection(long, data.n_models)
    if projection:
        st.caption(projection + " The report's stability.csv holds the whole fitted curve.")
    st.caption("Per image, the share of bootstrap draws of the models in which it is trivial or impossible is in "
               "the Images table (trivial_resample_share, impossible_resample_share).")

# ---- prediction depth (baldock2021)
st.header("Prediction depth")
depth = summary.get("depth") or {}
by_cat = _frames.report_file(data, DEEP_TABLES["depth_by_category"])
if by_cat is None:
    absent("No prediction depth: run the audit with `--depth` (k-NN probes on the base model's layers).")
else:
    st.markdown(
        "The earliest layer from which every later k-NN probe agrees with the network's final prediction "
        "(baldock2021). Easy images are decided early; a high depth means the network needed its late layers."
    )
    st.dataframe(_charts.readable_table(by_cat), hide_index=True, key="deeper_depth_by_category")
    consistency = _frames.report_file(data, DEEP_TABLES["depth_consistency"], index_col=0)
    if consistency is not None:
        heatmap(_frames.matrix_long_form(consistency),
                f"Spearman's ρ of prediction depth between {len(consistency)} models",
                key="deeper_depth_consistency", domain=(-1, 1))
    types = depth.get("types")
    if types:
        st.caption("Difficulty types (baldock2021 §4): " + ", ".join(f"{k}: {v:,}" for k, v in types["counts"].items()))

# ---- learnability (sharma2018)
st.header("Learnability")
learn = _frames.report_file(data, DEEP_TABLES["learnability"])
if learn is None:
    absent("No learnability: run the audit with `--learnability` (teacher-student agreement, sharma2018).")
else:
    st.markdown(
        "How well a student learns a teacher's labelling of the images (sharma2018): the true labels against "
        "random labels and random images, and the true labels within each category."
    )
    # a category's row has the learnability only: its other cells are blank, not "None"
    st.dataframe(_charts.readable_table(learn), hide_index=True, key="deeper_learnability")

# ---- label issues (cleanlab) and the causes of impossible images
st.header("Label issues")
hist = _frames.report_file(data, DEEP_TABLES["label_issues_histogram"])
if hist is None:
    absent("No label issues: they need the final softmax of the models (`probs/`), which this audit lacks.")
else:
    issues = summary.get("label_issues") or {}
    if issues:
        st.markdown(
            f"cleanlab flags **{issues['n_flagged']:,}** labels as likely wrong ({issues['flagged_share']:.1%} of "
            "the images), from the models' pooled out-of-sample probabilities. The Images page filters them."
        )
    long = hist.melt(id_vars="n_correct", var_name="flag", value_name="n_images")
    bars = alt.Chart(long).mark_bar().encode(
        x=alt.X("n_correct:O", axis=_charts.models_axis(data.n_models, f"models correct (of {data.n_models})")),
        y=alt.Y("n_images:Q", stack=True, axis=_charts.count_axis("images")),
        color=alt.Color("flag:N", title=None),
        tooltip=["n_correct:O", "flag:N", alt.Tooltip("n_images:Q", format=",")],
    ).properties(height=240, title="Label issues by the number of models correct")
    _common.chart(bars, key="deeper_label_issues")
    causes = _frames.report_file(data, DEEP_TABLES["impossible_causes"])
    if causes is not None:
        st.subheader("Why impossible images are impossible")
        st.dataframe(_charts.readable_table(causes), hide_index=True, key="deeper_causes",
                     column_config={"share": st.column_config.NumberColumn(format="percent")})
