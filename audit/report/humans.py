"""Humans as decision makers beside the models (meding2022 §4): how people fare on the images that
models find trivial, impossible or inconclusive, and how their errors line up with the models'.

The DDD split stays the models'. Each human's decisions cover the images they saw (read through
`AuditResult.human_decisions`); a missing decision is missing, not wrong. `human_report` adds the summary
part and the tables to a `ReportContent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.metrics import makers
from audit.metrics.difficulty import CATEGORIES
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, num, register_part
from audit.store import HUMAN_TABLES, AuditResult


@dataclass
class HumanDecisions:
    """Every human's decisions aligned to the audit's images."""

    names: list[str]
    correct: np.ndarray  # bool, (n_images, n_humans); False where not decided
    decided: np.ndarray  # bool, (n_images, n_humans)
    rt: np.ndarray  # float seconds, (n_images, n_humans); NaN where not decided or unknown


def read_humans(result: AuditResult) -> HumanDecisions | None:
    """The humans of an audit, through the store's reader, or None when it has none."""
    if not result.human_names:
        return None
    d = result.human_decisions()
    return HumanDecisions(result.human_names, d["correct"], d["decided"], d["rt"])


@register_part("humans", order=90, summary_lines=text.human_lines)
def humans_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Humans beside the models (meding2022 §4), for audits imported with human observers."""
    human_report(inputs.result, inputs.categories, content, random_state=inputs.random_state)


def human_report(result: AuditResult, categories: np.ndarray, report: ReportContent, *, n_bootstrap: int = 100,
                 random_state: int = 0) -> None:
    """Human accuracy per category, error consistency within and between humans and models, the images
    on which they part, and the split and human accuracy per condition, added to `report` (nothing
    without humans)."""
    humans = read_humans(result)
    if humans is None:
        return
    models_correct = result.correct()
    n_images, n_models = models_correct.shape
    summary = report.summary

    # ---- accuracy per category, each human over their own decisions, and pooled (Wilson intervals)
    per = makers.accuracy_by_category(humans.correct, humans.decided, categories, CATEGORIES)
    rows = []
    for j, name in enumerate(humans.names):
        row = {"name": name, "n_decided": int(humans.decided[:, j].sum()),
               "accuracy": float(humans.correct[humans.decided[:, j], j].mean()),
               "median_rt": float(np.nanmedian(humans.rt[:, j])) if np.isfinite(humans.rt[:, j]).any() else None}
        for c in CATEGORIES:
            row[f"{c}_n"] = int(per[c]["n"][j])
            row[f"{c}_accuracy"] = num(per[c]["accuracy"][j])
        rows.append(row)
    report.outputs[HUMAN_TABLES["humans"]] = pd.DataFrame(rows)
    pooled = {}
    for c in CATEGORIES:
        k, n = int(per[c]["k"].sum()), int(per[c]["n"].sum())
        low, high = makers.wilson_interval(k, n)
        pooled[c] = {"k": k, "n": n, "accuracy": num(k / n if n else np.nan), "ci95": [num(low), num(high)]}
    summary["humans"] = {"makers": rows, "accuracy_by_category": pooled}
    report.outputs[HUMAN_TABLES["by_category"]] = pd.DataFrame(
        [{"category": c, **{k: v for k, v in pooled[c].items() if k != "ci95"},
          "low": pooled[c]["ci95"][0], "high": pooled[c]["ci95"][1]} for c in CATEGORIES])

    # ---- error consistency: human-human, human-model, model-model, on all and inconclusive images
    correct = np.concatenate([models_correct, humans.correct], axis=1)
    decided = np.concatenate([np.ones_like(models_correct), humans.decided], axis=1)
    groups = np.array(["model"] * n_models + ["human"] * len(humans.names))
    consistency_rows = []
    summary["humans"]["error_consistency"] = {}
    rng = np.random.default_rng(random_state)
    for subset, mask in (("all", np.ones(n_images, bool)), ("inconclusive", categories == "inconclusive")):
        if not mask.any():
            report.notes.append(f"no {subset} images: human-model error consistency on them is skipped")
            continue
        kappa, n_shared = makers.masked_error_consistency(correct[mask], decided[mask])
        means = makers.group_consistency(kappa, groups)
        cis, resampled = _bootstrap_groups(correct[mask], decided[mask], groups, n_bootstrap, rng, means)
        if resampled < len(groups) and subset == "all":
            report.notes.append(f"the 95% intervals of mean κ by group of makers resample images over {resampled} "
                                f"of the {len(groups)} makers (every human while they are few, and a random "
                                "draw of the models)")
        entry = {}
        for pair, value in means.items():
            entry[pair] = {"mean": num(value), "ci95": cis.get(pair, [None, None])}
            consistency_rows.append({"subset": subset, "pair": pair, "mean": num(value),
                                     "low": entry[pair]["ci95"][0], "high": entry[pair]["ci95"][1]})
        entry["n_images"] = int(mask.sum())
        summary["humans"]["error_consistency"][subset] = entry
        names = list(result.model_names) + humans.names
        report.outputs[HUMAN_TABLES[f"makers_{subset}"]] = pd.DataFrame(kappa, index=names, columns=names) \
            .rename_axis("maker")
        report.outputs[HUMAN_TABLES[f"shared_{subset}"]] = pd.DataFrame(n_shared, index=names, columns=names) \
            .rename_axis("maker")
    report.outputs[HUMAN_TABLES["groups"]] = pd.DataFrame(consistency_rows)

    # ---- images on which humans and models part: impossible for models yet most humans right, and the reverse
    n_seen = humans.decided.sum(axis=1)
    human_share = np.divide((humans.correct & humans.decided).sum(axis=1), n_seen,
                            out=np.full(n_images, np.nan), where=n_seen > 0)
    parted = []
    for cat, want in (("impossible", lambda s: s > 0.5), ("trivial", lambda s: s < 0.5)):
        hit = (categories == cat) & (n_seen > 0) & want(np.nan_to_num(human_share, nan=0.5))
        for i in np.flatnonzero(hit):
            parted.append({"image_id": int(i), "category": cat, "models_right": int(models_correct[i].sum()),
                           "humans_right_share": float(human_share[i]), "humans_seen": int(n_seen[i])})
    summary["humans"]["parted"] = {
        "impossible_for_models_most_humans_right": sum(p["category"] == "impossible" for p in parted),
        "trivial_for_models_most_humans_wrong": sum(p["category"] == "trivial" for p in parted),
    }
    report.outputs[HUMAN_TABLES["parted"]] = pd.DataFrame(
        parted, columns=["image_id", "category", "models_right", "humans_right_share", "humans_seen"])

    # ---- per condition: the split among models and human accuracy
    if "condition" in result.images.columns and result.images["condition"].nunique() > 1:
        report.outputs[HUMAN_TABLES["by_condition"]] = _by_condition(result, models_correct, humans, categories,
                                                                     (correct, decided, groups))
        summary["humans"]["by_condition"] = report.outputs[HUMAN_TABLES["by_condition"]].to_dict(orient="records")
    return report


def _by_condition(result, models_correct, humans, categories, makers_all) -> pd.DataFrame:
    """In each condition: the split's shares (the audit's split, per image), model and human accuracy, and
    the mean κ model-model, human-model and human-human on the images each pair shares there."""
    rows = []
    correct, decided, groups = makers_all  # models then humans, as in human_report
    for cond, idx in result.images.groupby("condition").indices.items():
        shares = {c: float(np.mean(categories[idx] == c)) for c in CATEGORIES}
        dec = humans.decided[idx]
        k, n = int((humans.correct[idx] & dec).sum()), int(dec.sum())
        kappa, _ = makers.masked_error_consistency(correct[idx], decided[idx])
        means = makers.group_consistency(kappa, groups)
        rows.append({"condition": cond, "n_images": len(idx), **shares,
                     "model_accuracy": float(models_correct[idx].mean()),
                     "human_accuracy": num(k / n if n else np.nan), "human_decisions": n,
                     **{f"kappa_{pair}": num(means.get(pair, np.nan))
                        for pair in ("model-model", "human-model", "human-human")}})
    return pd.DataFrame(rows)


#: above this many makers, the group bootstrap resamples images over a subset of them
BOOTSTRAP_MAX_MAKERS = 60


def _bootstrap_groups(correct, decided, groups, n_bootstrap, rng, means) -> tuple[dict, int]:
    """Percentile 95% intervals of the group means of κ, resampling images; and how many makers the
    replicates used.

    With more than BOOTSTRAP_MAX_MAKERS makers the replicates use every human (up to half of them) and a
    random draw of the models, and each group mean's replicates are shifted by the full mean minus the
    subset's, as `consistency.error_consistency_bootstrap` does with max_models.
    """
    n_makers = correct.shape[1]
    if n_bootstrap <= 0:
        return {}, n_makers
    shift: dict[str, float] = {}
    if n_makers > BOOTSTRAP_MAX_MAKERS:
        humans, models = np.flatnonzero(groups == "human"), np.flatnonzero(groups == "model")
        half = BOOTSTRAP_MAX_MAKERS // 2
        humans = humans if len(humans) <= half else rng.choice(humans, half, replace=False)
        models = rng.choice(models, min(len(models), BOOTSTRAP_MAX_MAKERS - len(humans)), replace=False)
        cols = np.sort(np.concatenate([humans, models]))
        correct, decided, groups = correct[:, cols], decided[:, cols], groups[cols]
        sub_kappa, _ = makers.masked_error_consistency(correct, decided)
        for pair, value in makers.group_consistency(sub_kappa, groups).items():
            if means.get(pair) is not None and not np.isnan(means[pair]) and not np.isnan(value):
                shift[pair] = float(means[pair]) - float(value)
    draws: dict[str, list[float]] = {}
    n = correct.shape[0]
    for _ in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        kappa, _ = makers.masked_error_consistency(correct[idx], decided[idx])
        for pair, value in makers.group_consistency(kappa, groups).items():
            draws.setdefault(pair, []).append(value + shift.get(pair, 0.0))
    out = {}
    for pair, values in draws.items():
        values = np.asarray(values)
        values = values[~np.isnan(values)]
        out[pair] = ([num(np.quantile(values, 0.025)), num(np.quantile(values, 0.975))] if values.size
                     else [None, None])
    return out, correct.shape[1]


__all__ = ["HumanDecisions", "human_report", "humans_part", "read_humans"]
