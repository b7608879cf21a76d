"""The report: tables, summary.json and figures built from a stored audit.

`build_report(result)` reads decisions through the store only (it never
recomputes a decision), computes the measures in `audit.metrics`, and writes
`<audit>/report/` plus the per-image scores in images.parquet. It prints nothing;
`format_summary` (audit.report_text) turns the summary into the short text the CLI prints.
`report_state` and `read_report_tables` read a written report back. The file
names are the store's (`audit.store.REPORT_TABLES` and its neighbours); the
figures are drawn in `audit.plots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audit.data.sources import skipped_files_notes
from audit.deep.dynamics_scores import SCORE_IMAGE_COLUMNS, dynamics_scores_report
from audit.deep.similarity import similarity_report
from audit.deep.summary import DEEP_COLUMNS, deep_report
from audit.humans import human_report
from audit.metrics import agreement, consistency, difficulty, dynamics, groups
from audit.metrics.difficulty import CATEGORIES
from audit.plots import dynamics as dynamics_plots
from audit.plots import images as image_plots
from audit.plots import split as split_plots
from audit.plots.style import save_figure
from audit.report_text import count_noun, format_summary  # noqa: F401  (the report's words; kept importable here)
from audit.scoring import scored_report
from audit.store import (
    BASE_IMAGE_COLUMNS,
    DEEP_TABLES,
    REPORT_DIR,
    REPORT_FIGURES,
    REPORT_FILES,
    REPORT_MAPS,
    REPORT_TABLES,
    SUMMARY_FILE,
    AuditDir,
    AuditResult,
    write_csv,
    write_json,
    write_npy,
    write_parquet,
)
from audit.store.files import read_people_csv

#: Per-image columns that the report owns in images.parquet (rewritten on every build).
REPORT_COLUMNS = (
    "n_correct",
    "category",
    "tp_agreement",
    "consensus",
    "mean_true_prob",
    "accessibility",
    "learned_epoch",
    "forgetting_events",
)
#: Per-image columns of the deeper measures and the training-dynamics scores: rewritten when a build computes them.
OPTIONAL_COLUMNS = (*DEEP_COLUMNS, *SCORE_IMAGE_COLUMNS)
DECISION_MAP_ROWS = 500
#: above this many models, the bootstrap of mean κ resamples images over a random subset of them
BOOTSTRAP_MAX_MODELS = 50
#: The tables and maps a report needs before the app reads it back instead of computing it.
REQUIRED_FILES = (SUMMARY_FILE, REPORT_TABLES["histogram"], REPORT_TABLES["per_class"])


@dataclass
class ReportContent:
    """The report in memory, before anything is written.

    `outputs` maps each report file name to its content, in writing order: a
    DataFrame (written as CSV), an ndarray (.npy), or a function that draws a
    figure (.png; called only when the report is written). `scores` are the
    per-image columns that go into images.parquet.
    """

    summary: dict
    outputs: dict[str, object] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def table(self, key: str, frame: pd.DataFrame) -> None:
        self.outputs[REPORT_TABLES[key]] = frame

    def array(self, key: str, values: np.ndarray) -> None:
        self.outputs[REPORT_MAPS[key]] = values

    def figure(self, key: str, draw) -> None:
        self.outputs[REPORT_FIGURES[key]] = draw

    def tables(self) -> tuple[dict, dict]:
        """The tables and decision maps by their keys in REPORT_TABLES and REPORT_MAPS, as `read_report_tables`."""
        return ({key: self.outputs[name] for key, name in REPORT_TABLES.items() if name in self.outputs},
                {key: self.outputs[name] for key, name in REPORT_MAPS.items() if name in self.outputs})


def compute_report(result: AuditResult, *, tolerance: int = 1, n_bootstrap: int = 200, random_state: int = 0,
                   deep: bool = True) -> ReportContent:
    """Everything `build_report` writes, computed in memory (see there); `deep=False` skips the deeper measures."""
    difficulty.usable_tolerance(tolerance, 1)  # a bad tolerance fails before anything is read
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    dataset = result.manifest.get("dataset", {})
    notes: list[str] = skipped_files_notes(dataset.get("skipped") or [], result.class_names, result.labels)
    summary: dict = {"audit": _audit_facts(result)}
    content = ReportContent(summary=summary)
    if not result.is_complete and result.n_models:
        notes.append(f"this report covers the {count_noun(result.n_models, 'finished model')} only")

    names = result.model_names
    if not names:
        notes.append("no finished models: nothing to report")
        summary.update({"models": [], "notes": notes})
        return content

    correct = result.correct()
    accuracy = correct.mean(axis=0)
    epochs_of = {m: result.epochs(m) for m in names}
    summary["models"] = model_rows(result, names, accuracy, epochs_of)
    chance = difficulty.near_chance(correct, result.labels)
    summary["chance"] = {"accuracy": chance["chance"],
                         "models": [m for m, flag in zip(names, chance["near_chance"], strict=True) if flag]}
    for row, flag in zip(summary["models"], chance["near_chance"], strict=True):
        row["near_chance"] = bool(flag)
    if summary["chance"]["models"]:
        at = summary["chance"]["models"]
        notes.append(
            f"{count_noun(len(at), 'model')} at or near chance ({100 * chance['chance']:.1f}%): {', '.join(at)}; "
            "their split, dynamics and error consistency say little (train longer, or check the labels)"
        )
    scores = content.scores
    categories, n_corr = _split(content, correct, tolerance, notes)
    scores["tp_agreement"] = agreement.tp_agreement(correct)

    # ---- agreement at the final epoch (hacohen2020 §2)
    scores["consensus"] = agreement.consensus(result.predicted())
    scores["mean_true_prob"] = result.true_prob().astype(float).mean(axis=1)
    summary["agreement"] = {
        "mean_tp_agreement": float(scores["tp_agreement"].mean()),
        "mean_consensus": float(scores["consensus"].mean()),
    }

    # ---- the models' errors compared, the classes, the dynamics over epochs
    groups_of = dict(zip(names, model_fields(result, names, "group"), strict=True))
    summary["error_consistency"] = _error_consistency(content, correct, names, categories, notes, n_bootstrap,
                                                      random_state, groups_of)
    summary["classes"] = _per_class(content, result, correct, names)
    summary["dynamics"] = _dynamics(content, result, names, epochs_of, notes)

    # ---- deeper measures: prediction depth, label issues, learnability (baldock2021, cleanlab, sharma2018)
    if deep:
        extra = deep_report(result, categories, n_corr)
        scores.update(extra.scores)
        summary.update(extra.summary)
        notes.extend(extra.notes)
        for name, frame in extra.tables.items():
            content.outputs[name] = frame
        for name, fig in extra.figures.items():
            content.outputs[name] = lambda fig=fig: fig

    # ---- what the models share: representations (meding2022 A.3) and the pooled confusion matrix
    shared = similarity_report(result, categories, deep=deep)
    summary.update(shared.summary)
    notes.extend(shared.notes)
    content.outputs.update({**shared.tables, **shared.figures})

    # ---- other difficulty scores from the training dynamics, and the split under resampled models
    if deep:
        dyn_scores = dynamics_scores_report(result, correct, categories, n_corr, summary.get("tolerance_used"),
                                            random_state=random_state)
        scores.update(dyn_scores.scores)
        summary.update(dyn_scores.summary)
        notes.extend(dyn_scores.notes)
        content.outputs.update({**dyn_scores.tables, **dyn_scores.figures})

    # ---- humans beside the models (meding2022 §4; imported audits with human observers)
    humans = human_report(result, categories, random_state=random_state)
    if humans is not None:
        summary.update(humans.summary)
        notes.extend(humans.notes)
        content.outputs.update(humans.tables)

    # ---- models scored after the audit (`ddd-audit score`), on the audit's split (meding2022 §3.3)
    scored = scored_report(result, categories, n_bootstrap=n_bootstrap, random_state=random_state)
    if scored is not None:
        summary.update(scored.summary)
        notes.extend(scored.notes)
        content.outputs.update(scored.tables)

    summary["notes"] = notes
    return content


def build_report(
    result: AuditResult,
    *,
    tolerance: int = 1,
    n_bootstrap: int = 200,
    random_state: int = 0,
) -> dict:
    """Write the report of an audit into `<audit>/report/` and return its summary.

    Parameters
    ----------
    result : AuditResult
        From `audit.load`; only its finished models are used.
    tolerance : int, default 1
        t of the DDD split (trivial: n_correct >= M - t; impossible:
        n_correct <= t). Lowered to (M - 1) // 2 when M <= 2 t, with a note.
    n_bootstrap : int, default 200
        Bootstrap replicates (over images) for the confidence interval of the
        mean error consistency; 0 skips the intervals.
    random_state : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    summary : dict
        The content of report/summary.json (see `format_summary`).

    Notes
    -----
    Writes report/summary.json and the tables, decision maps and figures named in
    `audit.store.REPORT_FILES`, and images.parquet with the per-image scores of
    REPORT_COLUMNS added, and removes temporary files that a killed run left behind
    (unless a run is still writing). Tables that are undefined for this audit (e.g.
    error consistency with one model) are removed, and the summary's "notes" say why.
    """
    content = compute_report(result, tolerance=tolerance, n_bootstrap=n_bootstrap, random_state=random_state)
    result.keep_final_decisions()  # the app's pages then read one matrix per field, not every decision file
    if result.state != "running":  # a live run's temporary files are its writes in progress
        AuditDir(result.path).remove_temporary_files()
    store = AuditDir(result.path)
    out = store.file(REPORT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {"tables": [], "figures": []}
    for name, value in content.outputs.items():
        if isinstance(value, pd.DataFrame):
            _write_csv(store.file(REPORT_DIR, name), value)
            files["tables"].append(name)
        elif isinstance(value, np.ndarray):
            write_npy(store.file(REPORT_DIR, name), value)
            files["tables"].append(name)
        else:
            _save_figure(store.file(REPORT_DIR, name), value())
            files["figures"].append(name)
    if result.model_names:
        _write_images(result, content.scores)
    summary = content.summary
    summary["files"] = files
    _remove_stale(out, set(content.outputs))
    write_json(store.file(REPORT_DIR, SUMMARY_FILE), summary)
    return summary


# --------------------------------------------------------------------------- reading a report back
def report_state(result: AuditResult, summary: dict | None) -> str:
    """Whether the written report covers the finished models: "current", "stale" (older) or "missing"."""
    if summary is None or not all(result.report_path(f).exists() for f in REQUIRED_FILES):
        return "missing"
    reported = [m.get("name") for m in summary.get("models", [])]
    if reported != result.model_names or "n_correct" not in result.images.columns:
        return "stale"
    if summary.get("dynamics") and not result.report_path(REPORT_MAPS["all"]).exists():
        return "stale"
    return "current"


def read_report_tables(result: AuditResult) -> tuple[dict, dict]:
    """The written tables and decision maps, by their keys in REPORT_TABLES and REPORT_MAPS (absent ones left out).

    The error-consistency tables come back indexed by model name, as written.
    """
    tables, maps = {}, {}
    for key, name in REPORT_TABLES.items():
        p = result.report_path(name)
        if p.exists():
            tables[key] = read_people_csv(p, index_col=0 if key in ("ec_all", "ec_inconclusive") else None)
    for key, name in REPORT_MAPS.items():
        p = result.report_path(name)
        if p.exists():
            maps[key] = np.load(p)
    return tables, maps


def _split(content: ReportContent, correct: np.ndarray, tolerance: int, notes: list) -> tuple[np.ndarray, np.ndarray]:
    """The DDD split and its nulls (meding2022 §3.1-3.2, Fig. 2 and 17): (categories, n_correct)."""
    summary, scores = content.summary, content.scores
    n_models = correct.shape[1]
    t = difficulty.usable_tolerance(tolerance, n_models)
    if t < tolerance:
        notes.append(
            f"tolerance {tolerance} needs more than {2 * tolerance} models; with {n_models} the split uses "
            f"tolerance {t}"
        )
    if n_models == 1:
        notes.append("one model: trivial = correct and impossible = wrong; the split says nothing about DDD")
    n_corr = difficulty.n_correct(correct)
    categories = difficulty.split_from_counts(n_corr, n_models, tolerance=t)
    hist = np.bincount(n_corr, minlength=n_models + 1)
    binom = difficulty.binomial_null(correct)
    bb = difficulty.fit_beta_binomial(n_corr, n_models)
    if n_models == 1:
        notes.append("one model: the beta-binomial fit is not identifiable and equals the observed histogram")
    summary["tolerance"] = int(tolerance)
    summary["tolerance_used"] = t
    summary["split"] = {
        "counts": {c: int(np.count_nonzero(categories == c)) for c in CATEGORIES},
        "observed": difficulty.category_shares(categories),
        "binomial": difficulty.histogram_shares(binom, tolerance=t),
        "beta_binomial": difficulty.histogram_shares(bb.expected, tolerance=t),
    }
    summary["nulls"] = {
        "binomial": {"p": float(correct.mean())},
        "beta_binomial": {
            "alpha": bb.alpha,
            "beta": bb.beta,
            "mean": bb.mean,
            "overdispersion": bb.overdispersion,
            "log_likelihood": bb.log_likelihood,
        },
    }
    hist_frame = pd.DataFrame({"n_correct": np.arange(n_models + 1), "observed": hist, "binomial": binom,
                               "beta_binomial": bb.expected})
    content.table("histogram", hist_frame)
    content.figure("histogram", lambda: split_plots.histogram_figure(  # drawn after the deeper part's label issues
        hist_frame, tolerance=t, label_issues=content.outputs.get(DEEP_TABLES["label_issues_histogram"])))
    scores["n_correct"] = n_corr
    scores["category"] = categories
    return categories, n_corr


def _error_consistency(content: ReportContent, correct: np.ndarray, names: list[str], categories: np.ndarray,
                       notes: list, n_bootstrap: int, random_state: int, groups_of: dict) -> dict:
    """Error consistency on all images and on the inconclusive ones (meding2022 §2, §3.3, Fig. 6)."""
    ec: dict = {}
    n_images, n_models = correct.shape
    matrices = {}
    if n_models < 2:
        notes.append("one model: error consistency needs at least two models and is skipped")
        return ec
    for subset, mask in (("all", np.ones(n_images, dtype=bool)), ("inconclusive", categories == "inconclusive")):
        n_sub = int(mask.sum())
        if n_sub == 0:
            notes.append(f"no {subset} images: error consistency on them is skipped")
            continue
        sub = correct[mask]
        kappa = consistency.error_consistency_matrix(sub)
        matrices[subset] = kappa
        entry = {"mean": consistency.mean_error_consistency(kappa), "n_images": n_sub}
        if n_bootstrap:
            ci = consistency.error_consistency_bootstrap(sub, n_bootstrap=n_bootstrap, random_state=random_state,
                                                         per_pair=False, max_models=BOOTSTRAP_MAX_MODELS,
                                                         kappa=kappa)
            entry["ci95"] = [ci["mean_low"], ci["mean_high"]]
            if ci["models_resampled"] < n_models and subset == "all":
                notes.append(f"the 95% intervals of mean κ resample images over a random {ci['models_resampled']} "
                             f"of the {n_models} models (error_consistency_bootstrap, max_models)")
        ec[subset] = entry
        matrices[subset] = pd.DataFrame(kappa, index=names, columns=names).rename_axis("model")
        content.table(f"ec_{subset}", matrices[subset])
    if matrices:
        content.figure("error_consistency", lambda: split_plots.kappa_matrices_figure(matrices, groups_of))
    return ec


def _per_class(content: ReportContent, result: AuditResult, correct: np.ndarray, names: list[str]) -> dict:
    """Per-class accuracy and the easiest and hardest classes (meding2022 A.6, Table 1)."""
    class_names = result.class_names
    class_acc = difficulty.per_class_accuracy(correct, result.labels, len(class_names))
    class_sizes = np.bincount(result.labels, minlength=len(class_names))
    per_class = pd.DataFrame(class_acc, columns=names)
    per_class.insert(0, "n_images", class_sizes)
    per_class.insert(0, "class_name", class_names)
    per_class.insert(0, "class", np.arange(len(class_names)))
    per_class["mean"] = class_acc.mean(axis=1)
    content.table("per_class", per_class)
    k = min(10, int(np.count_nonzero(class_sizes)))
    ranked = difficulty.easiest_hardest_classes(class_acc, k=k)
    content.figure("per_class", lambda: image_plots.class_accuracy_figure(per_class))
    return {
        side: [{"class": class_names[c], "accuracy": float(per_class["mean"][c])} for c in ranked[side]]
        for side in ("easiest", "hardest")
    }


def _dynamics(content: ReportContent, result: AuditResult, names: list[str], epochs_of: dict,
              notes: list) -> dict | None:
    """Learning dynamics over the epochs the models share (meding2022 Fig. 4, 5, 12; hacohen2020 §2-3)."""
    scores = content.scores
    dyn = [m for m in names if len(epochs_of[m]) >= 2]
    if not dyn:
        notes.append("no model has more than one recorded epoch: learning dynamics are skipped")
        return None
    skipped = [m for m in names if m not in dyn]
    if skipped:
        notes.append(
            f"dynamics use the {len(dyn)} model(s) with several epochs; left out: {', '.join(skipped)}"
        )
    lengths = {len(epochs_of[m]) for m in dyn}
    by_epoch = result.correct_by_epoch(dyn)  # (n_images, n_dyn, n_epochs), shared epochs only
    n_epochs = by_epoch.shape[2]
    epochs = epochs_of[dyn[0]][:n_epochs]
    if len(lengths) > 1:
        notes.append(
            f"models record different numbers of epochs; dynamics use the first {n_epochs} shared epochs"
        )
    n_images, n_dyn = by_epoch.shape[:2]

    swaps = dynamics.swaps_per_epoch(by_epoch)  # (n_dyn, n_epochs - 1)
    frame = pd.DataFrame(swaps.T, columns=dyn)
    frame.insert(0, "epoch_to", epochs[1:])
    frame.insert(0, "epoch_from", epochs[:-1])
    frame["mean"] = swaps.mean(axis=0)
    content.table("swaps", frame)
    groups_of = dict(zip(names, model_fields(result, names, "group"), strict=True))  # all: one palette
    content.figure("swaps", lambda: dynamics_plots.swaps_figure(frame, groups_of))

    counts = by_epoch.sum(axis=1, dtype=np.int32)  # n models right, per image and epoch
    tpa = counts / n_dyn
    acc_by_epoch = by_epoch.mean(axis=0)  # (n_dyn, n_epochs)
    bimodal = agreement.bimodality_score(tpa)
    bimodal_null = agreement.bimodality_null(acc_by_epoch)
    tpa_hist, null_hist = agreement.tp_agreement_histograms(by_epoch)
    tp_frame = pd.DataFrame({"epoch": epochs, "mean_accuracy": acc_by_epoch.mean(axis=0),
                             "mean_tp_agreement": tpa.mean(axis=0), "bimodality": bimodal,
                             "bimodality_null": bimodal_null})
    content.table("tp_by_epoch", tp_frame)
    content.figure("tp_agreement", lambda: dynamics_plots.tp_agreement_figure(tp_frame, tpa_hist, null_hist))

    base = dyn.index(split_plots.base_model_of(groups_of, dyn))
    base_map = dynamics.binned_decision_map(by_epoch[:, base, :], n_bins=DECISION_MAP_ROWS)
    all_map = dynamics.binned_decision_map(by_epoch, n_bins=DECISION_MAP_ROWS)
    content.array("base", base_map)
    content.array("all", all_map)
    content.figure("decision_maps", lambda: dynamics_plots.decision_maps_figure(
        base_map, all_map, epochs, base_model=dyn[base], n_models=n_dyn, n_images=n_images))

    accessibility = agreement.accessibility(by_epoch)
    learned = dynamics.learned_epoch(by_epoch, epochs=epochs, reduce="median")
    forgotten = dynamics.forgetting_events(by_epoch).sum(axis=1)
    scores["accessibility"] = accessibility
    scores["learned_epoch"] = learned
    scores["forgetting_events"] = forgotten

    out = {
        "models": dyn,
        "base_model": dyn[base],
        "epochs": [int(e) for e in epochs],
        "mean_swap_share": float(swaps.mean() / n_images),
        "bimodality": [_num(v) for v in bimodal],
        "bimodality_null": [_num(v) for v in bimodal_null],
        "mean_accessibility": float(accessibility.mean()),
        "never_learned_share": float(np.isnan(learned).mean()),
        "median_learned_epoch": _num(np.nanmedian(learned)) if not np.isnan(learned).all() else None,
        "mean_forgetting_events": float(forgotten.mean() / n_dyn),
    }
    if n_dyn >= 2:
        half = groups.accessibility_correlation(
            agreement.accessibility(by_epoch[:, 0::2]), agreement.accessibility(by_epoch[:, 1::2])
        )
        out["split_half_accessibility_r"] = _num(half["r"])
    return out


# --------------------------------------------------------------------------- helpers
def _audit_facts(result: AuditResult) -> dict:
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


def model_fields(result: AuditResult, models, fld: str) -> list:
    """One field of each model's row in the models table (None where absent), in the order of `models`."""
    if fld not in result.models.columns:
        return [None] * len(models)
    values = result.models.drop_duplicates("name").set_index("name")[fld].reindex(list(models))
    return [None if pd.isna(v) else v for v in values]


def _num(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _write_images(result: AuditResult, scores: dict[str, np.ndarray]) -> None:
    images = result.images
    base = [c for c in BASE_IMAGE_COLUMNS if c in images.columns]
    # deeper columns are rewritten when this build computed them, and otherwise left as found
    others = [c for c in images.columns
              if c not in base and c not in REPORT_COLUMNS and not (c in OPTIONAL_COLUMNS and c in scores)]
    frame = images[base + others].copy()
    for col in REPORT_COLUMNS + OPTIONAL_COLUMNS:
        if col in scores:
            frame[col] = scores[col]
    write_parquet(AuditDir(result.path).file("images.parquet"), frame)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_csv(path, frame, index=frame.index.name is not None)


def _save_figure(path: Path, fig) -> None:
    save_figure(fig, path.with_suffix(""), (path.suffix.lstrip("."),))


def _remove_stale(out: Path, written: set[str]) -> None:
    """Remove tables and figures of an earlier build that this build did not write."""
    for name in REPORT_FILES:
        if name not in written:
            (out / name).unlink(missing_ok=True)
