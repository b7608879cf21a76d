"""The report's part for models scored on a finished audit (`ddd-audit score`): how each fares on the audit's
split, beside the audit's own models (meding2022 §3.3).

`scored_report(result, categories, out)` reads the scored models' decisions through the store and adds the
summary part and the table (`audit.store.SCORED_TABLE`) to `out`.
The split is the audit's: scored models never change it. Nothing here runs a model or prints.
"""

from __future__ import annotations

import json

import numpy as np

from audit.metrics import scored as scored_metrics
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, register_part
from audit.store import SCORED_TABLE, AuditResult


@register_part("scored", order=100, summary_lines=text.scored_lines)
def scored_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Models scored after the audit (`ddd-audit score`), on the audit's split (meding2022 §3.3)."""
    scored_report(inputs.result, inputs.categories, content, n_bootstrap=inputs.n_bootstrap,
                  random_state=inputs.random_state)


def scored_report(result: AuditResult, categories: np.ndarray, report: ReportContent, *, n_bootstrap: int = 200,
                  random_state: int = 0) -> None:
    """The scored models' table (see `audit.metrics.scored.scored_table`) and summary, added to `report`.

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
        return
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
    report.summary["scored"] = {
        "n_audit_models": len(audit_names),
        "n_bootstrap": int(n_bootstrap),
        "models": [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")],
        "ranking": [{k: _plain(v) for k, v in row.items()} for row in ranks.to_dict(orient="records")],
    }
    report.outputs[SCORED_TABLE] = table
    if not (np.asarray(categories) == "inconclusive").any():
        report.notes.append("no inconclusive images: the scored models' accuracy, error consistency and rank on "
                            "them are left out")


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


__all__ = ["scored_part", "scored_report"]
