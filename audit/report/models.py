"""The report's first part: the audit's facts, each model's accuracy, and the models at or near chance."""

from __future__ import annotations

from audit.data.sources import skipped_files_notes
from audit.metrics import difficulty
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, model_fields, register_part
from audit.store import AuditDir, AuditResult


@register_part("models", order=10, depends_on_tolerance=False, summary_lines=text.accuracy_lines)
def models_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Facts, accuracies and near-chance models (meding2022 §3: a split of models at chance says nothing)."""
    result, summary, notes = inputs.result, content.summary, content.notes
    dataset = result.manifest.get("dataset", {})
    notes.extend(skipped_files_notes(dataset.get("skipped") or [], result.class_names, result.labels))
    summary["audit"] = audit_facts(result)
    if not result.is_complete and result.n_models:
        notes.append(f"this report covers the {text.count_noun(result.n_models, 'finished model')} only")
    names = inputs.names
    if not names:
        notes.append("no finished models: nothing to report")
        summary["models"] = []
        return
    correct = inputs.correct
    summary["models"] = model_rows(result, names, correct.mean(axis=0), inputs.epochs_of)
    chance = difficulty.near_chance(correct, result.labels)
    summary["chance"] = {"accuracy": chance["chance"],
                         "models": [m for m, flag in zip(names, chance["near_chance"], strict=True) if flag]}
    for row, flag in zip(summary["models"], chance["near_chance"], strict=True):
        row["near_chance"] = bool(flag)
    if summary["chance"]["models"]:
        at = summary["chance"]["models"]
        notes.append(
            f"{text.count_noun(len(at), 'model')} at or near chance ({100 * chance['chance']:.1f}%): "
            f"{', '.join(at)}; their split, dynamics and error consistency say little (train longer, or check "
            "the labels)"
        )


def audit_facts(result: AuditResult) -> dict:
    """The audit's size and state: images, classes, jobs done and failed."""
    jobs = result.manifest.get("jobs", [])
    done = set(result.model_names) | set(AuditDir(result.path).finished_aux_jobs())
    return {
        "n_images": int(result.n_images),
        "n_classes": int(result.n_classes),
        "complete": bool(result.is_complete),
        "state": result.state,
        "state_text": result.state_text,
        "jobs_total": len(jobs),
        "jobs_done": sum(1 for j in jobs if j.get("name") in done),
        "unfinished": [j.get("name") for j in jobs if j.get("name") not in done],
        "failed": {j["name"]: (j.get("error") or "").strip().splitlines()[0] if j.get("error") else ""
                   for j in jobs if j.get("status") == "failed" and j.get("name") not in done},
    }


def model_rows(result: AuditResult, names, accuracy, epochs_of: dict) -> list[dict]:
    """One summary row per model: name, group, kind, final accuracy and its recorded epochs."""
    group, kind = model_fields(result, names, "group"), model_fields(result, names, "kind")
    return [
        {
            "name": m,
            "group": group[i],
            "kind": kind[i],
            "accuracy": float(accuracy[i]),
            "recorded_epochs": len(epochs_of[m]),
            "final_epoch": int(epochs_of[m][-1]),
        }
        for i, m in enumerate(names)
    ]
