"""The report's deeper-measures part: per-image columns, summary entries, tables and a figure.

`deep_report(result, categories, n_correct, out)` reads the stored depth, softmax and
learnability files of an audit (never a model), computes prediction depth by
DDD category, cleanlab label issues, the causes of impossible images and
learnability, and adds them to `out`. Nothing is written here.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from audit.metrics import depth as depth_metrics
from audit.metrics.difficulty import CATEGORIES
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, num, register_part
from audit.store import DEEP_FIGURES, DEEP_TABLES

#: Per-image columns this part adds to images.parquet (only those it can compute; others are left as found).
DEEP_COLUMNS = ("prediction_depth", "depth_type", "impossible_cause", "is_label_issue", "label_quality",
                "learnable")
SPLIT_JOB = "depth_split"
LEARNABILITY_JOB = "learnability"


@register_part("deeper", order=60, deep=True, summary_lines=text.deeper_lines)
def deeper_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Prediction depth, label issues, causes of impossible images and learnability (baldock2021, sharma2018)."""
    deep_report(inputs.result, inputs.split.categories, inputs.split.n_correct, content)


def deep_report(result, categories: np.ndarray, n_correct: np.ndarray, out: ReportContent, *,
                figures: bool = True) -> None:
    """Prediction depth, label issues, impossible causes and learnability of a stored audit.

    Parameters
    ----------
    result : AuditResult
    categories : ndarray of str, shape (n_images,)
        The DDD split the report uses (trivial / inconclusive / impossible).
    n_correct : ndarray of int, shape (n_images,)
    out : ReportContent
        Receives the scores, summary entries, tables, figure and notes. Measures that have no stored inputs
        (no depth files, no probabilities, no learnability job) are left out, with a note where it helps.
    figures : bool, default True
    """
    cats = np.asarray(categories)
    depth_info = _depth(result, cats, out)
    issues = _label_issues(result, cats, n_correct, out)
    _causes(cats, depth_info, issues, out)
    _learnability(result, cats, out)
    if figures and issues is not None:
        causes, n_models = out.summary.get("impossible_causes"), len(result.model_names)
        out.outputs[DEEP_FIGURES["label_issues"]] = lambda: _fig_label_issues(n_correct, issues, causes, n_models)


# --------------------------------------------------------------------------- prediction depth
def _stored_depths(result) -> tuple[dict, dict, dict]:
    """Each model's stored prediction depth of the validation images, its deepest layer and probe accuracies."""
    n = result.n_images
    per_model, max_depths, probe_acc = {}, {}, {}
    for m in result.model_names:
        frame = result.depth(m)
        if frame is None:
            continue
        val = frame[frame["split"] == "val"]
        depth = np.full(n, np.nan)
        depth[val["image_id"].to_numpy()] = val["depth"].to_numpy(dtype=float)
        probes = [c for c in val.columns if c.startswith("probe_")]
        per_model[m] = depth
        max_depths[m] = len(probes) - 1
        labels = result.labels[val["image_id"].to_numpy()]
        acc = depth_metrics.probe_accuracy(val[probes].to_numpy(dtype=np.int64), labels)
        probe_acc[m] = {c[len("probe_"):]: float(a) for c, a in zip(probes, acc, strict=True)}
    return per_model, max_depths, probe_acc


def _depth(result, cats: np.ndarray, out: ReportContent) -> dict | None:
    n = result.n_images
    per_model, max_depths, probe_acc = _stored_depths(result)
    split = result.aux_table("depth", SPLIT_JOB)
    if not per_model and split is None:
        return None
    info: dict = {"max_depth": None, "depth_val": None, "depth_train": None}
    summary: dict = {}
    if per_model:
        names = list(per_model)
        stack = np.stack([per_model[m] for m in names], axis=1)
        same_scale = len(set(max_depths.values())) == 1
        if same_scale:
            mean_depth = _nanmean_rows(stack)
            info["max_depth"] = next(iter(max_depths.values()))
        else:  # rescale each model to [0, 1] (baldock2021 Fig. 2) before averaging
            scaled = stack / np.array([max_depths[m] for m in names])[None, :]
            mean_depth = _nanmean_rows(scaled)
            info["max_depth"] = 1
            out.notes.append("models with different numbers of probes: prediction depth is rescaled to [0, 1] "
                             "per model before averaging")
        info["depth_val"] = mean_depth
        out.scores["prediction_depth"] = mean_depth
        by_cat = []
        for c in CATEGORIES:
            mask = cats == c
            vals = mean_depth[mask]
            ok = vals[~np.isnan(vals)]
            by_cat.append({"category": c, "n_images": int(mask.sum()), "n_defined": int(ok.size),
                           "mean_prediction_depth": float(ok.mean()) if ok.size else np.nan,
                           "median_prediction_depth": float(np.median(ok)) if ok.size else np.nan,
                           "undefined_share": float(1 - ok.size / mask.sum()) if mask.sum() else np.nan})
        table = pd.DataFrame(by_cat)
        out.outputs[DEEP_TABLES["depth_by_category"]] = table
        summary = {
            "models": names,
            "max_depth": max_depths,
            "rescaled": not same_scale,
            "mean_by_category": {r["category"]: num(r["mean_prediction_depth"]) for r in by_cat},
            "undefined_by_category": {r["category"]: num(r["undefined_share"]) for r in by_cat},
            "undefined_share": float(np.isnan(mean_depth).mean()),
            "probe_accuracy": probe_acc,
            "records": {m: _record_depth(result, m) for m in names},
        }
        if len(names) >= 2:
            rho, mean_rho = depth_metrics.depth_consistency(stack)
            out.outputs[DEEP_TABLES["depth_consistency"]] = pd.DataFrame(rho, index=names, columns=names).rename_axis("model")
            summary["spearman_mean"] = num(mean_rho)
    if split is not None:
        rec = result.aux_record(SPLIT_JOB) or {}
        max_split = int(rec.get("max_depth", 0)) or None
        dv = np.full(n, np.nan)
        dt = np.full(n, np.nan)
        ids = split["image_id"].to_numpy()
        dv[ids] = split["depth_val"].to_numpy(dtype=float)
        dt[ids] = split["depth_train"].to_numpy(dtype=float)
        if max_split:
            types = depth_metrics.difficulty_type(dv, dt, max_depth=max_split)
            out.scores["depth_type"] = types
            summary["types"] = {
                "max_depth": max_split,
                "counts": {t: int((types == t).sum()) for t in depth_metrics.DIFFICULTY_TYPES},
                "by_category": {
                    c: {t: int(((types == t) & (cats == c)).sum()) for t in depth_metrics.DIFFICULTY_TYPES}
                    for c in CATEGORIES
                },
                "undefined": int((types == "").sum()),
            }
            info["split"] = {"depth_val": dv, "depth_train": dt, "max_depth": max_split}
    out.summary["depth"] = summary
    return info


def _record_depth(result, model: str) -> dict | None:
    if "depth" not in result.models.columns:
        return None
    value = result.models.loc[result.models["name"] == model, "depth"].iloc[0]
    if not isinstance(value, str):
        return None
    rec = json.loads(value)
    return {k: rec.get(k) for k in ("n_reference", "k", "backend", "layers", "dims", "seconds")}


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


# --------------------------------------------------------------------------- label issues
def _label_issues(result, cats: np.ndarray, n_correct: np.ndarray, out: ReportContent):
    from audit.deep.label_issues import ensemble_probabilities, find_label_issues

    shape = (result.n_images, result.n_classes)
    names, probs = [], []
    for m in result.model_names:
        p = result.probs(m)
        if p is not None and p.shape == shape:
            names.append(m)
            probs.append(p)
    if not names:
        return None
    try:
        issues = find_label_issues(result.labels, ensemble_probabilities(probs))
    except ValueError as exc:
        out.notes.append(f"label issues skipped: {exc}")
        return None
    flag = issues.is_label_issue
    out.scores["is_label_issue"] = flag
    out.scores["label_quality"] = issues.label_quality
    by_cat = {}
    for c in CATEGORIES:
        mask = cats == c
        by_cat[c] = {"n_images": int(mask.sum()), "n_flagged": int(flag[mask].sum()),
                     "flagged_share": num(flag[mask].mean()) if mask.any() else None}
    n_models = len(result.model_names)
    hist = pd.DataFrame({
        "n_correct": np.arange(n_models + 1),
        "label_issue": np.bincount(n_correct[flag], minlength=n_models + 1),
        "other": np.bincount(n_correct[~flag], minlength=n_models + 1),
    })
    out.outputs[DEEP_TABLES["label_issues_histogram"]] = hist
    out.summary["label_issues"] = {
        "models": names,
        "n_flagged": int(flag.sum()),
        "flagged_share": float(flag.mean()),
        "impossible_flagged_share": by_cat["impossible"]["flagged_share"],
        "by_category": by_cat,
        "flagged_in_impossible_share": num(((cats == "impossible") & flag).sum() / flag.sum())
        if flag.any() else None,
    }
    if len(names) < n_models:
        out.notes.append(f"label issues use the {len(names)} of {n_models} models that stored probabilities")
    return issues


# --------------------------------------------------------------------------- causes of impossible images
def _causes(cats: np.ndarray, depth_info: dict | None, issues, out: ReportContent) -> None:
    impossible = cats == "impossible"
    if issues is None or depth_info is None or not impossible.any():
        return
    split = depth_info.get("split")
    if depth_info.get("depth_val") is not None:
        dv, max_depth = depth_info["depth_val"], depth_info["max_depth"]
        dt = None
        if split is not None:  # put the training depths on the same scale as the validation depths
            dt = split["depth_train"] * (max_depth / split["max_depth"])
    else:
        dv, dt, max_depth = split["depth_val"], split["depth_train"], split["max_depth"]
    cause = depth_metrics.impossible_cause(dv, issues.is_label_issue, max_depth=int(max_depth), depth_train=dt)
    cause = np.where(impossible, cause, "")
    out.scores["impossible_cause"] = cause
    counts = {c: int((cause == c).sum()) for c in depth_metrics.IMPOSSIBLE_CAUSES}
    undefined = int((impossible & (cause == "")).sum())
    n_imp = int(impossible.sum())
    out.outputs[DEEP_TABLES["impossible_causes"]] = pd.DataFrame({
        "cause": [*depth_metrics.IMPOSSIBLE_CAUSES, "undefined"],
        "n_images": [*counts.values(), undefined],
        "share": [v / n_imp for v in [*counts.values(), undefined]],
    })
    out.summary["impossible_causes"] = {"n_impossible": n_imp, "counts": counts, "undefined": undefined,
                                        "uses_training_depth": dt is not None}


# --------------------------------------------------------------------------- learnability
def _learnability(result, cats: np.ndarray, out: ReportContent) -> None:
    rec = result.aux_record(LEARNABILITY_JOB)
    frame = result.aux_table("learnability", LEARNABILITY_JOB)
    if rec is None or frame is None:
        return
    conditions = rec.get("conditions", {})
    rows = [{"condition": c, **{k: v for k, v in r.items() if k in ("learnability", "chance", "teacher_accuracy",
                                                                    "student_accuracy", "teacher_fit",
                                                                    "student_fit")}}
            for c, r in conditions.items()]
    summary = {"conditions": {r["condition"]: {k: v for k, v in r.items() if k != "condition"} for r in rows},
               "config": rec.get("config")}
    if "agree_true_data" in frame.columns:
        agree = np.zeros(result.n_images, dtype=bool)
        defined = np.zeros(result.n_images, dtype=bool)
        ids = frame["image_id"].to_numpy()
        agree[ids] = frame["agree_true_data"].to_numpy(dtype=bool)
        defined[ids] = True
        if defined.all():
            out.scores["learnable"] = agree
        by_cat = {c: num(agree[defined & (cats == c)].mean()) if (defined & (cats == c)).any() else None
                  for c in CATEGORIES}
        summary["learnable_by_category"] = by_cat
        for c in CATEGORIES:
            rows.append({"condition": f"true_data, {c} images", "learnability": by_cat[c]})
    out.outputs[DEEP_TABLES["learnability"]] = pd.DataFrame(rows)
    out.summary["learnability"] = summary


# --------------------------------------------------------------------------- figure
def _fig_label_issues(n_correct, issues, causes: dict | None, n_models: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2, width_ratios=(3, 1))
    k = np.arange(n_models + 1)
    flag = issues.is_label_issue
    other = np.bincount(n_correct[~flag], minlength=n_models + 1)
    bad = np.bincount(n_correct[flag], minlength=n_models + 1)
    ax.bar(k - 0.2, other, width=0.4, color="tab:blue", label="other images")
    ax.bar(k + 0.2, bad, width=0.4, color="tab:red", label="label issues (cleanlab)")
    ax.set_yscale("log")
    ax.set_xlabel("models that classify the image correctly (n_correct)")
    ax.set_ylabel("images (log scale)")
    ax.set_title("n_correct histogram split into label issues and other images (meding2022 Fig. 17)")
    ax.legend(frameon=False)
    if causes:
        names = [*causes["counts"], "no depth"]
        values = [*causes["counts"].values(), causes["undefined"]]
        ax2.bar(range(len(names)), values, color=["tab:red", "tab:orange", "tab:gray", "lightgray"])
        ax2.set_xticks(range(len(names)), [c.replace("_", " ") for c in names], rotation=20)
        ax2.set_ylabel("impossible images")
        ax2.set_title("why impossible")
    else:
        ax2.set_axis_off()
        ax2.set_title("why impossible: needs prediction depth")
    return fig
