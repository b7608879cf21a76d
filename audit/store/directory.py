"""The audit directory's writer: the manifest, one set of files per finished job, and their removal.

Every file is written atomically, and a job's record is written last, so it marks the job done.
Per-job files keep concurrent writers apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from audit.store.decisions import DECISION_COLUMNS, FINAL_CACHE_DIR, decision_columns, decision_path
from audit.store.files import AuditError, read_json, write_json, write_npy, write_npz, write_parquet
from audit.store.safety import check_name, inside, seal_manifest

FORMAT = "ddd-audit/1"
BASE_IMAGE_COLUMNS = ("image_id", "label", "class_name", "split", "source")
SPLITS = ("val", "train")
#: Per-job files beside the decisions (see AuditDir): probe depths, final softmax, learnability.
EXTRA_FOLDERS = ("depth", "probs", "learnability", "representation")

#: What the tool writes at the top of an audit directory. A folder that holds nothing else (and the
#: temporary files of a killed writer) was begun by a run or an import stopped before its manifest.
AUDIT_ENTRIES = ("manifest.json", "images.parquet", "images.npy", "models.parquet", "decisions",
                 "decisions_train", "jobs", "humans", "failures", "checkpoints", "aux", "report", "studies",
                 FINAL_CACHE_DIR, *EXTRA_FOLDERS)
#: What `--force` may remove of an audit to replace it: all the tool wrote but the studies (human data).
REPLACEABLE_ENTRIES = tuple(e for e in AUDIT_ENTRIES if e != "studies")


def folder_state(path: str | os.PathLike) -> tuple[str, list[str]]:
    """What a folder given as `--out` holds: ("missing" | "empty" | "audit" | "begun" | "foreign", names).

    "audit": the tool's manifest is there; "begun": only what the tool writes (AUDIT_ENTRIES, temporary
    files), from a run or import killed before its manifest, which the same command resumes; "foreign":
    anything else, whose names (the first few) come back: no command may replace or mix into it.
    """
    path = Path(path)
    if not path.exists():
        return "missing", []
    if not path.is_dir():
        return "foreign", [path.name]
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return "empty", []
    if "manifest.json" in entries:
        return "audit", []
    foreign = [e for e in entries if e not in AUDIT_ENTRIES and not (e.startswith(".") and e.endswith(".tmp"))]
    return ("foreign", foreign[:5]) if foreign else ("begun", [])


def refuse_foreign(path: str | os.PathLike, option: str = "--out") -> str:
    """folder_state(path)[0], after raising AuditError for a folder that holds files the tool did not write."""
    state, names = folder_state(path)
    if state == "foreign":
        shown = ", ".join(names)
        raise AuditError(f"{option} {path} holds files that ddd-audit did not write ({shown}); it is not an audit "
                         "directory, and --force replaces only an audit directory or an empty folder; choose "
                         "another " + option)
    return state


def clear_for_replacement(path: str | os.PathLike) -> None:
    """Remove what the tool wrote in an audit directory (REPLACEABLE_ENTRIES), keeping its studies/."""
    import shutil

    path = Path(path)
    for name in REPLACEABLE_ENTRIES:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


# The report under report/, written by audit.report and read back by the app. Tables (CSV) and
# decision maps (.npy) are keyed as the app reads them; figures and the deeper measures' files by name.
#: The audit directory's own files (read and written only here, in audit.store).
MANIFEST_FILE = "manifest.json"
IMAGES_TABLE = "images.parquet"
IMAGES_ARRAY = "images.npy"
MODELS_TABLE = "models.parquet"
REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"
REPORT_TABLES = {
    "histogram": "histogram.csv",
    "ec_all": "error_consistency_all.csv",
    "ec_inconclusive": "error_consistency_inconclusive.csv",
    "per_class": "per_class_accuracy.csv",
    "swaps": "swaps_per_epoch.csv",
    "tp_by_epoch": "tp_agreement_by_epoch.csv",
}
REPORT_MAPS = {"base": "decision_map_base.npy", "all": "decision_map_all.npy",
               # TP-agreement counts per epoch, observed and under independent models: (n_models + 1, n_epochs)
               "tp_observed": "tp_agreement_observed.npy", "tp_null": "tp_agreement_null.npy"}
REPORT_FIGURES = {
    "histogram": "histogram.png",
    "error_consistency": "error_consistency.png",
    "per_class": "per_class_accuracy.png",
    "swaps": "swaps_per_epoch.png",
    "tp_agreement": "tp_agreement.png",
    "decision_maps": "decision_maps.png",
}
DEEP_TABLES = {
    "depth_by_category": "depth_by_category.csv",
    "depth_consistency": "depth_consistency.csv",
    "label_issues_histogram": "label_issues_histogram.csv",
    "impossible_causes": "impossible_causes.csv",
    "learnability": "learnability.csv",
}
DEEP_FIGURES = {"label_issues": "label_issues.png"}
#: Representational similarity between the models (audit.representation): model x model and against the base.
REPRESENTATION_TABLES = {
    "rsa_all": "rsa_all.csv",
    "rsa_inconclusive": "rsa_inconclusive.csv",
    "cka_all": "cka_all.csv",
    "cka_inconclusive": "cka_inconclusive.csv",
    "vs_base": "representation_vs_base.csv",
}
#: The ensemble confusion matrix of the final decisions pooled over models (true class x predicted class).
CONFUSION_TABLES = {"all": "confusion_all.csv", "impossible": "confusion_impossible.csv"}
DEEPER_FIGURES = {"representation": "representation.png", "confusion": "confusion.png",
                  "training_scores": "training_scores.png", "stability": "stability.png"}
#: Training-dynamics scores compared (Spearman, per-image scores in images.parquet) and the split's
#: stability under resampled models (audit.report.training_scores).
SCORE_TABLES = {"score_correlation": "score_correlation.csv", "stability": "stability.csv",
                "training_split": "training_scores_train.csv"}
#: Humans beside the models (audits imported with human observers; see audit.report.humans).
HUMAN_TABLES = {
    "humans": "humans.csv",
    "by_category": "human_accuracy_by_category.csv",
    "groups": "error_consistency_groups.csv",
    "makers_all": "error_consistency_makers_all.csv",
    "makers_inconclusive": "error_consistency_makers_inconclusive.csv",
    "shared_all": "shared_images_all.csv",
    "shared_inconclusive": "shared_images_inconclusive.csv",
    "parted": "human_model_disagreements.csv",
    "by_condition": "split_by_condition.csv",
}
#: Models scored on the audit's split by `ddd-audit score` (see audit.report.scored): one row per scored model.
SCORED_TABLE = "scored_models.csv"
#: The models table's kind of a scored model: its decisions are stored, but it takes no part in the split.
SCORED_KIND = "scored"
#: Every table and figure a report build may write beside its summary (an earlier build's are removed).
REPORT_FILES = (*REPORT_TABLES.values(), *REPORT_MAPS.values(), *REPORT_FIGURES.values(),
                *DEEP_TABLES.values(), *DEEP_FIGURES.values(), *HUMAN_TABLES.values(), SCORED_TABLE,
                *REPRESENTATION_TABLES.values(), *CONFUSION_TABLES.values(), *DEEPER_FIGURES.values(),
                *SCORE_TABLES.values())


class AuditDir:
    """Writer for one audit directory.

    Layout::

        manifest.json            config, dataset fingerprint, versions, jobs and their status
        images.parquet           one row per validation image (+ per-image scores after the report)
        images.npy               the validation images as uint8 (array datasets only)
        models.parquet           one row per finished model
        jobs/<model>.json        the per-job model record (written last; marks the job done); a model
                                 scored on the finished audit (`ddd-audit score`) has kind "scored" and
                                 takes no part in the split
        decisions/<model>.parquet        validation decisions at every recorded epoch
        decisions_train/<model>.parquet  training-split decisions (optional)
        depth/<model>.parquet    prediction depth per image (image_id, split, depth, predicted,
                                 probe_<layer> classes; see audit.deep.probes)
        probs/<model>.npy        final-epoch softmax on the validation split, float16,
                                 shape (n_images, n_classes) (for label issues)
        aux/<job>.json           record of a job that is not a model (learnability, depth_split)
        learnability/<job>.parquet  per-image teacher-student agreement (sharma2018)
        representation/<model>.npz  the penultimate representation's Gram matrix on a seeded subset of
                                 the validation images (image_ids, gram_upper float32, sums, n_features;
                                 see audit.metrics.representation), never the features
        report/                  summary.json, tables and figures (REPORT_FILES; rebuilt by `ddd-audit report`)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # paths
    def file(self, *parts: str) -> Path:
        """A path inside the audit directory, resolved; AuditError for anything that would lie outside it.

        Every write of the audit goes through here (see audit.store.safety.inside).
        """
        return inside(self.path, *parts)

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def decision_path(self, model: str, split: str = "val") -> Path:
        return decision_path(self.path, model, split)

    def job_path(self, model: str) -> Path:
        return self.path / "jobs" / f"{model}.json"

    def _job_file(self, *parts: str, name: str) -> Path:
        """The file of a job named `name` (checked against the name rule) at `parts` inside the audit."""
        check_name(name, "job name")
        return self.file(*parts)

    # images
    def write_images(self, frame: pd.DataFrame) -> None:
        """Write images.parquet: one row per validation image (and the report's per-image scores)."""
        write_parquet(self.file(IMAGES_TABLE), frame)

    def write_image_array(self, images: np.ndarray) -> None:
        """Write images.npy: the validation images as uint8 (array datasets)."""
        write_npy(self.file(IMAGES_ARRAY), np.ascontiguousarray(images))

    # manifest
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict:
        if not self.exists():
            raise AuditError(f"{self.path} is not an audit directory (no manifest.json)")
        try:
            manifest = read_json(self.manifest_path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AuditError(f"{self.manifest_path} is not valid JSON ({exc}); the audit directory is damaged") \
                from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            manifest = manifest if isinstance(manifest, dict) else {}
            raise AuditError(f"{self.path} holds format {manifest.get('format')!r}, expected {FORMAT!r}")
        return manifest

    def write_manifest(self, manifest: dict, *, seal: bool | None = None) -> None:
        """Write manifest.json. `seal` records that the dataset root comes from this user's own flags
        (audit.store.safety.seal_manifest); by default only a new audit directory's first manifest is
        sealed, and a rewrite keeps the seal it was given (which holds only while the root is unchanged)."""
        manifest = dict(manifest)
        manifest["format"] = FORMAT
        if seal is None:
            seal = not self.manifest_path.exists()
        if seal and isinstance(manifest.get("dataset"), dict):
            manifest["dataset"] = dict(manifest["dataset"])
            seal_manifest(manifest)
        write_json(self.file("manifest.json"), manifest)

    # jobs
    def job_done(self, model: str) -> bool:
        return self.job_path(model).exists() and self.decision_path(model).exists()

    def finished_jobs(self) -> list[str]:
        folder = self.path / "jobs"
        if not folder.exists():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if self.decision_path(p.stem).exists())

    def scored_jobs(self) -> list[str]:
        """The finished models whose record has kind "scored": run on the audit's images after it, outside the split."""
        return [n for n in self.finished_jobs() if read_json(self.job_path(n)).get("kind") == SCORED_KIND]

    def write_job(
        self,
        model: str,
        record: dict,
        decisions: pd.DataFrame,
        train_decisions: pd.DataFrame | None = None,
        extras: dict | None = None,
    ) -> None:
        """Store one finished job. The job record is written last, so it marks completion.

        `extras` maps paths relative to the audit (e.g. "depth/base.parquet",
        "probs/base.npy") to a DataFrame or an array; see `write_extras`.
        """
        missing = set(DECISION_COLUMNS) - set(decisions.columns)
        if missing:
            raise ValueError(f"decisions for {model} lack columns {sorted(missing)}")
        check_name(model, "model name")
        write_parquet(self.file(*self.decision_path(model).relative_to(self.path).parts),
                      decisions[decision_columns(decisions)])
        if train_decisions is not None:
            write_parquet(self.file(*self.decision_path(model, "train").relative_to(self.path).parts),
                          train_decisions[decision_columns(train_decisions)])
        self.write_extras(extras or {})
        write_json(self._job_file("jobs", f"{model}.json", name=model), {"name": model, **record})

    def write_extras(self, extras: dict) -> None:
        """Write per-job extra files atomically: {relative path: DataFrame (.parquet), ndarray (.npy) or
        dict of arrays (.npz)}."""
        for rel, obj in extras.items():
            rel_path = Path(rel)
            if rel_path.is_absolute() or ".." in rel_path.parts or rel_path.parts[0] not in EXTRA_FOLDERS \
                    or len(rel_path.parts) != 2:
                raise ValueError(f"extra file {rel!r} must lie in one of {EXTRA_FOLDERS}")
            target = self._job_file(*rel_path.parts, name=rel_path.stem)
            if rel_path.suffix == ".parquet" and isinstance(obj, pd.DataFrame):
                write_parquet(target, obj)
            elif rel_path.suffix == ".npy" and isinstance(obj, np.ndarray):
                write_npy(target, obj)
            elif rel_path.suffix == ".npz" and isinstance(obj, dict):
                write_npz(target, obj)
            else:
                raise ValueError(f"extra file {rel!r}: expected a DataFrame for .parquet, an array for .npy or "
                                 "a dict of arrays for .npz, "
                                 f"got {type(obj).__name__}")

    # jobs that are not models (learnability, depth_split): no decisions, a record under aux/
    def aux_path(self, name: str) -> Path:
        return self.path / "aux" / f"{name}.json"

    def write_aux_job(self, name: str, record: dict, extras: dict | None = None) -> None:
        """Store a finished job that is not a model; its record (written last) marks completion."""
        self.write_extras(extras or {})
        write_json(self._job_file("aux", f"{name}.json", name=name), {"name": name, **record})

    def finished_aux_jobs(self) -> list[str]:
        folder = self.path / "aux"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    def write_failure(self, model: str, error: str) -> None:
        write_json(self._job_file("failures", f"{model}.json", name=model), {"name": model, "error": error})

    def clear_failure(self, model: str) -> None:
        self._job_file("failures", f"{model}.json", name=model).unlink(missing_ok=True)

    def failures(self) -> dict[str, str]:
        folder = self.path / "failures"
        if not folder.exists():
            return {}
        return {p.stem: read_json(p)["error"] for p in sorted(folder.glob("*.json"))}

    def remove_job(self, model: str) -> None:
        check_name(model, "job name")
        for p in (self.job_path(model), self.aux_path(model), self.decision_path(model),
                  self.decision_path(model, "train")):
            self.file(*p.relative_to(self.path).parts).unlink(missing_ok=True)
        for folder in EXTRA_FOLDERS:
            for suffix in (".parquet", ".npy", ".npz"):
                self.file(folder, f"{model}{suffix}").unlink(missing_ok=True)

    def remove_temporary_files(self) -> list[Path]:
        """Delete the temporary files (".NAME.XXXX.SUFFIX.tmp") that a killed writer left behind.

        Call it only while nothing writes to the audit: a live writer's temporary file would go too.
        """
        removed = []
        if self.path.is_dir():
            for p in self.path.rglob(".*.tmp"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
        return removed

    def write_models_table(self, order: Sequence[str] | None = None) -> pd.DataFrame:
        """Gather the per-job records into models.parquet (in `order` where given)."""
        names = self.finished_jobs()
        if order is not None:
            have, wanted = set(names), set(order)
            names = [n for n in order if n in have] + [n for n in names if n not in wanted]
        rows = []
        for name in names:
            rec = read_json(self.job_path(name))
            row = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in rec.items()}
            rows.append(row)
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"name": pd.Series(dtype=str)})
        write_parquet(self.file("models.parquet"), frame)
        return frame
