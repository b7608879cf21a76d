"""Scored page: models scored on the finished audit (`ddd-audit score`), on the audit's own split.

Each scored model's accuracy on all images and on the trivial, inconclusive and impossible ones, its
error consistency with the audit's models, and its rank on all images beside its rank on the
inconclusive ones (meding2022 §3.3). UI only; the frames come from `_frames`.
"""

import altair as alt
import numpy as np
import streamlit as st

from audit_app import _common, _frames

data = _common.require_audit()
_common.header("Scored models", data, "How do new models fare on this audit's split?")
st.markdown(
    "A scored model classified the audit's images after the audit, through `ddd-audit score`. It takes no "
    "part in the split: the trivial, inconclusive and impossible images stay those of the audit's own "
    "models. If many images are trivial or impossible, models that look alike on all images can differ "
    "on the inconclusive ones: their error consistency with the audit's models falls towards 0 and their "
    "order by accuracy can change (meding2022 §3.3)."
)


t = _common.tolerance(data)
at_t = _common.at_tolerance(data, n_bootstrap=200)  # the κ intervals, as the written report has them
summary = at_t.summary
frames = _frames.scored_frames(summary)
if frames is None:
    st.info(
        "No model has been scored on this audit yet. To see how a model that was not in the audit fares on "
        "its split, run for example\n\n"
        f"`ddd-audit score {data.path} --models efficientnet_lite1@48`\n\n"
        "and reload this page.",
        icon=":material/info:",
    )
    st.stop()

n_inconclusive = at_t.split.counts["inconclusive"]
st.caption(
    f"Split at tolerance {t} (set on Overview): {n_inconclusive:,} inconclusive images of {data.n_images:,}, made by "
    f"the audit's {data.n_models} models. Accuracy with its 95% Wilson interval; κ is the mean error consistency "
    "with the audit's models, with its 95% bootstrap interval over images; rank 1 = most accurate among the "
    "audit's models and the scored ones."
)
st.dataframe(
    frames["models"],
    hide_index=True,
    key="scored_models",
    column_config={
        "model": st.column_config.TextColumn("model", pinned=True),
        "all": "accuracy, all images",
        "rank all": st.column_config.NumberColumn("rank, all images", format="%d"),
        "rank inconclusive": st.column_config.NumberColumn("rank, inconclusive", format="%d"),
        "of": st.column_config.NumberColumn("of", format="%d", help="Makers ranked: the audit's and the scored."),
    },
)
st.download_button(
    "Table as CSV", _frames.to_csv_bytes(frames["table"]), file_name="scored_models.csv", mime="text/csv",
    key="scored_csv", icon=":material/download:",
)

st.subheader("Rank on all images and on the inconclusive ones")
ranks = frames["ranks"]
if ranks["images"].nunique() < 2:
    st.info(f"No inconclusive images at tolerance {t}, so there is no rank on them.")
else:
    n_ranked = int(ranks["rank"].max())
    ranks = ranks.assign(maker=np.where(ranks["scored"].astype(bool), "scored model", "the audit's models"))
    base = alt.Chart(ranks).encode(
        x=alt.X("images:N", title=None, sort=["all images", "inconclusive images"], axis=alt.Axis(labelAngle=0)),
        y=alt.Y("rank:Q", title="rank by accuracy (1 = most accurate)",
                scale=alt.Scale(reverse=True, domain=[1, n_ranked], nice=False),
                axis=alt.Axis(tickMinStep=1, format="d")),
        detail="model:N",
        color=alt.Color("maker:N", title=None, scale=alt.Scale(domain=["scored model", "the audit's models"],
                                                                range=["#d62728", "#9e9e9e"])),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("images:N"), alt.Tooltip("rank:Q"),
                 alt.Tooltip("accuracy:Q", format=".1%")],
    )
    slope = (base.mark_line(opacity=0.7) + base.mark_point(filled=True, size=60)).properties(
        height=360, title="A model that climbs does better on the inconclusive images than on all images")
    _common.chart(slope, key="scored_ranks")
    st.caption("Red: scored models; grey: the audit's own. " + _common.chart_help())
_common.notes(data, "scored")
