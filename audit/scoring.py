"""The report's part for models scored on a finished audit (`ddd-audit score`): how each fares on the audit's
split, beside the audit's own models (meding2022 §3.3).

`scored_report(result, categories)` reads the scored models' decisions through the store and returns the
summary part and the table (`audit.store.SCORED_TABLE`); `format_scored_summary` gives the CLI's lines.
The split is the audit's: scored models never change it. Nothing here runs a model or prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audit.metrics import scored as scored_metrics
from audit.metrics.difficulty import CATEGORIES
from audit.store import SCORED_TABLE, AuditResult


@dataclass
class ScoredReport:
    summary: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def scored_report(result: AuditResult, categories: np.ndarray, *, n_bootstrap: int = 200,
                  random_state: int = 0) -> ScoredReport | None:
    """The scored models' table (see `audit.metrics.scored.scored_table`) and summary; None without scored models.

    Parameters
    ----------
    result : AuditResult
    categories : ndarray of str, shape (n_images,)
        The audit's split, made by its own models (`result.model_names`).
    n_bootstrap : int, default 200
        Bootstrap replicates for the κ intervals; 0 leaves them out.
    """
    names = result.scored_names
    if not names or not result.model_names:
        return None
    audit_names = result.model_names
    table = scored_metrics.scored_table(result.correct(names), result.correct(), categories, names=names,
                                        audit_names=audit_names, n_bootstrap=n_bootstrap,
                                        random_state=random_state)
    info = result.scored.set_index("name")
    table.insert(1, "spec", [_spec_text(info.at[n, "spec"]) if "spec" in info.columns else "" for n in names])
    table.insert(2, "scored_kind", [str(info.at[n, "scored_kind"]) if "scored_kind" in info.columns else ""
                                    for n in names])
    makers = np.concatenate([result.correct(), result.correct(names)], axis=1)
    ranks = scored_metrics.accuracy_ranks(makers, categories)
    ranks.insert(0, "model", audit_names + names)
    ranks.insert(1, "scored", [False] * len(audit_names) + [True] * len(names))
    report = ScoredReport(summary={"scored": {
        "n_audit_models": len(audit_names),
        "n_bootstrap": int(n_bootstrap),
        "models": [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")],
        "ranking": [{k: _plain(v) for k, v in row.items()} for row in ranks.to_dict(orient="records")],
    }})
    report.tables[SCORED_TABLE] = table
    if not (np.asarray(categories) == "inconclusive").any():
        report.notes.append("no inconclusive images: the scored models' accuracy, error consistency and rank on "
                            "them are left out")
    return report


def format_scored_summary(summary: dict) -> list[str]:
    """The scored models' part of the CLI summary (empty without scored models)."""
    part = summary.get("scored")
    if not part or not part.get("models"):
        return []
    n_audit = part["n_audit_models"]
    lines = [f"Scored models (outside the split, which the audit's {n_audit} models make; 95% intervals: "
             f"Wilson for accuracy{', bootstrap for kappa' if part.get('n_bootstrap') else ''})"]
    for row in part["models"]:
        lines.append(f"  {row['model']}")
        cells = [f"all {_pct(row['accuracy'], row['accuracy_low'], row['accuracy_high'])}"]
        for c in CATEGORIES:
            if row[f"{c}_n"]:
                cells.append(f"{c} {_pct(row[f'{c}_accuracy'], row[f'{c}_low'], row[f'{c}_high'])} "
                             f"(n = {int(row[f'{c}_n']):,})")
        lines.append("    accuracy   " + "   ".join(cells))
        kappa = [f"{subset} {_kappa(row, subset)}" for subset in scored_metrics.KAPPA_SUBSETS
                 if row.get(f"kappa_{subset}") is not None]
        if kappa:
            lines.append(f"    kappa with the audit's models (mean)   {'   '.join(kappa)}")
        rank = f"all images {_rank(row['rank_all'])}"
        if row.get("rank_inconclusive") is not None:
            rank += f", inconclusive images {_rank(row['rank_inconclusive'])}"
        lines.append(f"    rank by accuracy, of {row['n_ranked']}   {rank}")
    return lines


def _pct(value, low, high) -> str:
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


def _spec_text(spec) -> str:
    """A pretrained model's spec as given; a variant's (a dict, or its JSON) as its name and architecture."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            return spec
    if isinstance(spec, dict):
        return f"variant {spec.get('name')} ({spec.get('arch')}, {spec.get('epochs')} epochs)"
    return "" if spec is None or (isinstance(spec, float) and np.isnan(spec)) else str(spec)


def _plain(value):
    """A JSON-ready value: numpy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


__all__ = ["ScoredReport", "format_scored_summary", "scored_report"]
