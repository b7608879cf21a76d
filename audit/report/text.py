"""The report's words: `format_summary` turns report/summary.json into the short text the CLI prints (and the
HTML and PDF reports show), one `*_lines` function per report part, `headline` (the key finding in one
sentence, for the HTML report and the app's Overview) and `count_noun`. Pure: no files, no figures."""

from __future__ import annotations

import numpy as np

from audit.metrics.difficulty import CATEGORIES
from audit.metrics.scored import KAPPA_SUBSETS
from audit.store import SCORE_TABLES

#: with more models than this, the summary lists the best and worst few and the spread, not every model
SUMMARY_MAX_MODELS = 30


def _accuracy_lines(models: list[dict]) -> list[str]:
    """Each model's accuracy; for a zoo, the spread, the five best and worst, and those near chance."""
    def line(m, width, indent="  "):
        flag = "  (near chance)" if m.get("near_chance") else ""
        return f"{indent}{m['name']:<{width}}  {100 * m['accuracy']:6.2f}%{flag}"

    if len(models) <= SUMMARY_MAX_MODELS:
        width = max(len(m["name"]) for m in models)
        return ["Accuracy"] + [line(m, width) for m in models]
    ranked = sorted(models, key=lambda m: -m["accuracy"])
    acc = np.array([m["accuracy"] for m in ranked])
    chance = [m for m in ranked[5:-5] if m.get("near_chance")]
    width = max(len(m["name"]) for m in ranked[:5] + ranked[-5:] + chance)
    out = [f"Accuracy of {len(models):,} models: median {100 * np.median(acc):.2f}%, "
           f"range {100 * acc.min():.2f}% to {100 * acc.max():.2f}% (every model in report/summary.json)",
           "  best five:"] + [line(m, width, "    ") for m in ranked[:5]]
    out += ["  worst five:"] + [line(m, width, "    ") for m in ranked[-5:]]
    if chance:
        out += ["  also near chance:"] + [line(m, width, "    ") for m in chance]
    return out


def format_summary(summary: dict) -> str:
    """A short plain-text summary of a report, for the CLI.

    Parameters
    ----------
    summary : dict
        As returned by `build_report` (or read from report/summary.json).

    Returns
    -------
    text : str
        The audit's size and state, then each registered report part's lines in report order (each
        model's accuracy; the trivial / inconclusive / impossible shares beside those expected under the
        binomial and beta-binomial nulls; the mean error consistency on all images and on the
        inconclusive subset; ...), failed jobs, and notes on anything skipped.
    """
    from audit.report.parts import report_parts

    facts = summary.get("audit", {})
    state = facts.get("state_text") or (
        "complete" if facts.get("complete") else f"{facts.get('jobs_done')}/{facts.get('jobs_total')} jobs done"
    )
    lines = [
        f"Audit: {count_noun(facts.get('n_images'), 'image')}, {count_noun(facts.get('n_classes'), 'class')}, "
        f"{count_noun(len(summary.get('models', [])), 'model')} ({state})"
    ]
    for part in report_parts():
        extra = part.summary_lines(summary) if part.summary_lines is not None else []
        if extra:
            lines.append("")
            lines.extend(extra)
    failed = facts.get("failed") or {}
    if failed:
        lines.append("")
        lines.append("Failed jobs")
        lines.extend(f"  {name}: {error}" for name, error in failed.items())
    notes = summary.get("notes") or []
    if notes:
        lines.append("")
        lines.append("Notes")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines)


def accuracy_lines(summary: dict) -> list[str]:
    """Each model's accuracy; for a zoo, the spread, the five best and worst, and those near chance."""
    models = summary.get("models") or []
    return _accuracy_lines(models) if models else []


def split_lines(summary: dict) -> list[str]:
    """The split's shares beside the two nulls."""
    split = summary.get("split")
    if not split:
        return []
    lines = [f"Split (tolerance {summary.get('tolerance_used')})  observed   binomial   beta-binomial"]
    for c in CATEGORIES:
        lines.append(
            f"  {c:<20}  {100 * split['observed'][c]:7.1f}%   {100 * split['binomial'][c]:7.1f}%   "
            f"{100 * split['beta_binomial'][c]:12.1f}%"
        )
    return lines


def consistency_lines(summary: dict) -> list[str]:
    """Mean error consistency on all images and on the inconclusive ones, with their intervals."""
    ec = summary.get("error_consistency") or {}
    if not ec:
        return []
    lines = ["Mean error consistency (kappa)"]
    for subset, label in (("all", "all images"), ("inconclusive", "inconclusive images")):
        if subset in ec:
            e = ec[subset]
            ci = f"  95% CI [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]" if "ci95" in e else ""
            lines.append(f"  {label:<20}  {e['mean']:.3f}{ci}  (n = {e['n_images']:,})")
    return lines


def dynamics_lines(summary: dict) -> list[str]:
    """Swaps per epoch, never-learned images and the split-half reliability of Accessibility."""
    dyn = summary.get("dynamics")
    if not dyn:
        return []
    lines = [f"Dynamics ({len(dyn['models'])} models, {len(dyn['epochs'])} epochs)",
             f"  decisions that swap per epoch    {100 * dyn['mean_swap_share']:.1f}% of images",
             f"  never learned (median model)     {100 * dyn['never_learned_share']:.1f}% of images"]
    if dyn.get("split_half_accessibility_r") is not None:
        lines.append(f"  split-half Accessibility r       {dyn['split_half_accessibility_r']:.3f}")
    return lines


def deeper_lines(summary: dict) -> list[str]:
    """The deeper measures' lines: depth by category, label issues, causes, learnability."""
    lines: list[str] = []
    dep = summary.get("depth") or {}
    if dep.get("models"):
        mean = dep["mean_by_category"]
        scale = "rescaled to 0..1" if dep.get("rescaled") else f"0 = input .. {max(dep['max_depth'].values())} = softmax"
        lines.append(f"  prediction depth, {', '.join(dep['models'])} ({scale})")
        lines.append("    " + "   ".join(f"{c} {_fmt(mean.get(c))}" for c in CATEGORIES)
                     + f"   (undefined {100 * dep['undefined_share']:.1f}%)")
        if dep.get("spearman_mean") is not None:
            lines.append(f"    consistency across models (Spearman) {dep['spearman_mean']:.3f}")
    if (dep.get("types") or {}).get("counts"):
        lines.append("  difficulty types (baldock2021 §4)")
        lines.append("    " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dep["types"]["counts"].items()))
    li = summary.get("label_issues")
    if li:
        lines.append(f"  label issues (cleanlab on {len(li['models'])} models' probabilities)")
        lines.append(f"    {li['n_flagged']} images ({100 * li['flagged_share']:.1f}%); "
                     f"{_pct(li.get('impossible_flagged_share'))} of the impossible images")
    causes = summary.get("impossible_causes")
    if causes:
        c = causes["counts"]
        lines.append(f"  impossible images ({causes['n_impossible']})")
        lines.append(f"    {c['label_error']} likely label errors, {c['look_alike']} look-alikes, "
                     f"{c['ambiguous']} ambiguous" + (f", {causes['undefined']} without a depth"
                                                     if causes["undefined"] else ""))
    lea = summary.get("learnability")
    if lea:
        lines.append("  learnability (sharma2018; chance agreement in brackets)")
        lines.append("    " + ", ".join(f"{k.replace('_', ' ')} {_pct(v['learnability'])} ({_pct(v['chance'])})"
                                        for k, v in lea["conditions"].items()))
        by_cat = lea.get("learnable_by_category")
        if by_cat:
            lines.append("    learnable share: " + ", ".join(f"{c} {_pct(by_cat.get(c))}" for c in CATEGORIES))
    if lines:
        lines.insert(0, "Deeper measures")
    return lines


def similarity_lines(summary: dict) -> list[str]:
    """The representations' and confusions' lines: mean RSA and CKA, and what impossible images are taken for."""
    lines: list[str] = []
    rep = summary.get("representation")
    if rep:
        lines.append(f"  representations ({len(rep['models'])} models' penultimate layers, "
                     f"{rep['n_images']:,} images; mean over pairs)")
        for measure, label in (("rsa", "RSA (Spearman)"), ("cka", "linear CKA")):
            means = rep["mean"].get(measure, {})
            lines.append(f"    {label:<16}" + "   ".join(f"{s} {v:.3f}" for s, v in means.items()))
    conf = summary.get("confusion")
    if conf and conf.get("impossible_top"):
        top = conf["impossible_top"][:3]
        lines.append(f"  impossible images, most frequent confusions (share of the {conf['n_models']} models' "
                     "decisions on them)")
        lines.append("    " + ", ".join(f"{t['true']} as {t['predicted']} {100 * t['share']:.1f}%" for t in top))
    if lines:
        lines.insert(0, "Representations and confusions")
    return lines
def scores_lines(summary: dict) -> list[str]:
    """The training-dynamics scores' and stability's lines: the scores against n_correct, and the recommendation."""
    lines: list[str] = []
    sc = summary.get("training_scores")
    if sc:
        el2n = f"; EL2N at epoch {sc['el2n_epoch']}" if sc.get("el2n_epoch") is not None else ""
        lines.append(f"Training-dynamics scores ({len(sc['models'])} models, epochs {sc['epochs'][0]}-"
                     f"{sc['epochs'][1]}{el2n})")
        rho = sc["spearman_n_correct"]
        lines.append("  Spearman with n_correct  " + ", ".join(
            f"{k} {v:+.2f}" for k, v in rho.items() if v is not None))
        if sc.get("training_split_images"):
            lines.append(f"  also on the {sc['training_split_images']:,} training images "
                         f"(report/{SCORE_TABLES['training_split']})")
    st = summary.get("stability")
    if st:
        if lines:
            lines.append("")
        n_images = (summary.get("audit") or {}).get("n_images") or 0
        images = f", on {st['curve_images']:,} of the images" if 0 < st.get("curve_images", 0) < n_images else ""
        lines.append(f"Stability of the split ({st['n_draws']} resamples of the models per size{images})")
        lines.append(f"  {st['recommendation']}")
        lines.append(f"  trivial in every bootstrap draw {100 * st['always_trivial_share']:.1f}% of images, "
                     f"impossible in every draw {100 * st['always_impossible_share']:.1f}%")
    return lines


def human_lines(summary: dict) -> list[str]:
    """The humans' lines (empty without humans)."""
    h = summary.get("humans")
    if not h:
        return []
    lines = [f"Humans ({len(h['makers'])}; accuracy on their own decisions, 95% Wilson interval)"]
    for c in CATEGORIES:
        e = h["accuracy_by_category"][c]
        if e["n"]:
            lines.append(f"  on {c:<13} images  {100 * e['accuracy']:5.1f}%  [{100 * e['ci95'][0]:.1f}, "
                         f"{100 * e['ci95'][1]:.1f}]  (n = {e['n']:,})")
    for subset, entry in h.get("error_consistency", {}).items():
        parts = [f"{pair} {v['mean']:.3f}" + (f" [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
                                              if v["ci95"][0] is not None else "")
                 for pair, v in entry.items() if isinstance(v, dict) and v["mean"] is not None]
        lines.append(f"  kappa on {subset} images ({entry['n_images']}): {', '.join(parts)}")
    parted = h["parted"]
    lines.append(f"  impossible for models, most humans right: {parted['impossible_for_models_most_humans_right']}; "
                 f"trivial for models, most humans wrong: {parted['trivial_for_models_most_humans_wrong']}")
    for row in h.get("by_condition", []):
        human = f"{100 * row['human_accuracy']:.1f}%" if row["human_accuracy"] is not None else "-"
        kappa = row.get("kappa_human-model")
        lines.append(f"  condition {row['condition']}: trivial {100 * row['trivial']:.1f}%, inconclusive "
                     f"{100 * row['inconclusive']:.1f}%, impossible {100 * row['impossible']:.1f}%; "
                     f"models {100 * row['model_accuracy']:.1f}%, humans {human}"
                     + (f", kappa human-model {kappa:.3f}" if kappa is not None else ""))
    return lines


def scored_lines(summary: dict) -> list[str]:
    """The scored models' lines (empty without scored models)."""
    part = summary.get("scored")
    if not part or not part.get("models"):
        return []
    n_audit = part["n_audit_models"]
    lines = [f"Scored models (outside the split, which the audit's {n_audit} models make; 95% intervals: "
             f"Wilson for accuracy{', bootstrap for kappa' if part.get('n_bootstrap') else ''})"]
    for row in part["models"]:
        lines.append(f"  {row['model']}")
        cells = [f"all {_pct_interval(row['accuracy'], row['accuracy_low'], row['accuracy_high'])}"]
        for c in CATEGORIES:
            if row[f"{c}_n"]:
                cells.append(f"{c} {_pct_interval(row[f'{c}_accuracy'], row[f'{c}_low'], row[f'{c}_high'])} "
                             f"(n = {int(row[f'{c}_n']):,})")
        lines.append("    accuracy   " + "   ".join(cells))
        kappa = [f"{subset} {_kappa(row, subset)}" for subset in KAPPA_SUBSETS
                 if row.get(f"kappa_{subset}") is not None]
        if kappa:
            lines.append(f"    kappa with the audit's models (mean)   {'   '.join(kappa)}")
        rank = f"all images {_rank(row['rank_all'])}"
        if row.get("rank_inconclusive") is not None:
            rank += f", inconclusive images {_rank(row['rank_inconclusive'])}"
        lines.append(f"    rank by accuracy, of {row['n_ranked']}   {rank}")
    return lines


def _pct_interval(value, low, high) -> str:
    if value is None:
        return "-"
    interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None and high is not None else ""
    return f"{100 * value:.1f}%{interval}"


def _kappa(row: dict, subset: str) -> str:
    low, high = row.get(f"kappa_{subset}_low"), row.get(f"kappa_{subset}_high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{row[f'kappa_{subset}']:.3f}{interval}"


def _rank(value) -> str:
    return str(int(value)) if value is not None else "-"


def _percent(share: float) -> str:
    """A share as a whole percent; '<1%' for a share above zero that rounds to 0."""
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def headline(summary: dict) -> str | None:
    """The report's key finding in one sentence (meding2022 §3.2-3.3), or None before a split exists.

    E.g. "51% trivial and 13% impossible, where the binomial null predicts 4% and
    <1%; κ falls from 0.62 on all images to 0.26 on the inconclusive ones".
    """
    split = summary.get("split")
    if not split:
        return None
    observed, binomial = split["observed"], split["binomial"]
    text = (f"{_percent(observed['trivial'])} trivial and {_percent(observed['impossible'])} impossible, where the "
            f"binomial null predicts {_percent(binomial['trivial'])} and {_percent(binomial['impossible'])}")
    ec = summary.get("error_consistency") or {}
    if "all" in ec and "inconclusive" in ec:
        high, low = ec["all"]["mean"], ec["inconclusive"]["mean"]
        verb = "falls" if low < high else "rises" if low > high else "stays"
        text += f"; κ {verb} from {high:.2f} on all images to {low:.2f} on the inconclusive ones"
    elif "all" in ec:
        text += f"; mean κ {ec['all']['mean']:.2f} on all images"
    return text


def count_noun(n, noun: str) -> str:
    """'1 model', '3 models', '2 classes'."""
    plural = noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
    text = f"{int(n):,}" if isinstance(n, int | np.integer) else str(n)
    return f"{text} {noun if n == 1 else plural}"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
