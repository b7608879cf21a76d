"""The report's words: `format_summary` turns report/summary.json into the short text the CLI prints (and the
HTML and PDF reports show), and `count_noun` counts in words. Pure: no files, no figures."""

from __future__ import annotations

import numpy as np

from audit.deep.dynamics_scores import format_scores_summary
from audit.deep.similarity import format_similarity_summary
from audit.deep.summary import format_deep_summary
from audit.humans import format_human_summary
from audit.metrics.difficulty import CATEGORIES
from audit.scoring import format_scored_summary

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
        Each model's accuracy; the trivial / inconclusive / impossible shares
        beside those expected under the binomial and beta-binomial nulls; the
        mean error consistency on all images and on the inconclusive subset;
        and notes on anything skipped.
    """
    facts = summary.get("audit", {})
    state = facts.get("state_text") or (
        "complete" if facts.get("complete") else f"{facts.get('jobs_done')}/{facts.get('jobs_total')} jobs done"
    )
    lines = [
        f"Audit: {count_noun(facts.get('n_images'), 'image')}, {count_noun(facts.get('n_classes'), 'class')}, "
        f"{count_noun(len(summary.get('models', [])), 'model')} ({state})"
    ]
    models = summary.get("models", [])
    if models:
        lines.append("")
        lines.extend(_accuracy_lines(models))
    split = summary.get("split")
    if split:
        lines.append("")
        lines.append(
            f"Split (tolerance {summary.get('tolerance_used')})  observed   binomial   beta-binomial"
        )
        for c in CATEGORIES:
            lines.append(
                f"  {c:<20}  {100 * split['observed'][c]:7.1f}%   {100 * split['binomial'][c]:7.1f}%   "
                f"{100 * split['beta_binomial'][c]:12.1f}%"
            )
    ec = summary.get("error_consistency") or {}
    if ec:
        lines.append("")
        lines.append("Mean error consistency (kappa)")
        for subset, label in (("all", "all images"), ("inconclusive", "inconclusive images")):
            if subset in ec:
                e = ec[subset]
                ci = f"  95% CI [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]" if "ci95" in e else ""
                lines.append(f"  {label:<20}  {e['mean']:.3f}{ci}  (n = {e['n_images']:,})")
    dyn = summary.get("dynamics")
    if dyn:
        lines.append("")
        lines.append(f"Dynamics ({len(dyn['models'])} models, {len(dyn['epochs'])} epochs)")
        lines.append(f"  decisions that swap per epoch    {100 * dyn['mean_swap_share']:.1f}% of images")
        lines.append(f"  never learned (median model)     {100 * dyn['never_learned_share']:.1f}% of images")
        if dyn.get("split_half_accessibility_r") is not None:
            lines.append(f"  split-half Accessibility r       {dyn['split_half_accessibility_r']:.3f}")
    for extra in (format_deep_summary(summary), format_similarity_summary(summary), format_scores_summary(summary),
                  format_human_summary(summary), format_scored_summary(summary)):
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


def count_noun(n, noun: str) -> str:
    """'1 model', '3 models', '2 classes'."""
    plural = noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
    text = f"{int(n):,}" if isinstance(n, int | np.integer) else str(n)
    return f"{text} {noun if n == 1 else plural}"
