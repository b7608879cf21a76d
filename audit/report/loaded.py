"""`Report`: one audit's report, loaded once, for every reader (the app, `ddd-audit figures`, the HTML and PDF
reports, the notebook API and `study create`).

`Report.load(path)` reads the written report when it covers the audit's finished models, and otherwise
computes it in memory (no bootstrap, no deeper measures, nothing written), as for an audit that is still
running. `Report.at_tolerance(t)` recomputes only the parts whose result depends on the split's tolerance.
Every file of the audit directory is read through `audit.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics import difficulty
from audit.metrics.difficulty import Split
from audit.report.build import REPORT_COLUMNS, read_report_table, read_report_tables, report_state
from audit.report.deeper import DEEP_COLUMNS
from audit.report.parts import compute_report, model_fields, report_parts
from audit.store import DEEP_TABLES, AuditDir, AuditError, AuditResult, load

#: The columns of `Report.models`: one row per finished model.
MODEL_COLUMNS = ("name", "kind", "group", "accuracy", "recorded_epochs", "final_epoch")


@dataclass
class Report:
    """One audit's report and the facts its readers show beside it.

    Attributes
    ----------
    path : str
    result : AuditResult
        The audit, as `audit.store.load` read it.
    source : {"current", "stale", "missing", "empty", "computed"}
        Where the report comes from: the written files ("current"), or computed in memory because the written
        report is absent ("missing") or older than the finished models ("stale"); "empty" = no finished model
        yet; "computed" = recomputed at another tolerance (`at_tolerance`).
    summary : dict
        Shaped like report/summary.json.
    images : DataFrame
        One row per image, with the per-image scores (and "class_name").
    tables, maps : dict
        The report's tables and decision maps by their keys in `audit.store.REPORT_TABLES` and `REPORT_MAPS`.
    computed : dict
        Other tables computed in memory, by file name (they take the place of the written ones).
    """

    path: str
    result: AuditResult = field(repr=False)
    source: str
    summary: dict = field(repr=False)
    images: pd.DataFrame = field(repr=False)
    tables: dict = field(default_factory=dict, repr=False)
    maps: dict = field(default_factory=dict, repr=False)
    computed: dict = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, audit: AuditResult | str | Path) -> Report:
        """The audit's report: the written one when it is current, else computed in memory.

        Raises AuditError when `audit` is not a readable audit directory.
        """
        result = audit if isinstance(audit, AuditResult) else load(audit)
        images = _with_class_names(result)
        if not result.model_names:
            return cls(str(result.path), result, "empty", {"models": [], "notes": ["no finished models yet"]},
                       images)
        summary = result.summary()
        state = report_state(result, summary)
        if state == "current":
            tables, maps = read_report_tables(result)
            return cls(str(result.path), result, state, summary, images, tables, maps)
        content = compute_report(result, n_bootstrap=0, deep=False)
        return cls(str(result.path), result, state, content.summary,
                   _rescored(images, content.scores, drop_written=True),
                   *content.tables(), computed=_files(content))

    def at_tolerance(self, tolerance: int, *, n_bootstrap: int = 0) -> Report:
        """The report with the parts that depend on the tolerance recomputed at `tolerance` (in memory).

        The deeper measures keep the written report's split; `n_bootstrap` sets the κ intervals of the
        recomputed parts (0: none). The same report comes back when the tolerance is the report's own.
        """
        used = difficulty.usable_tolerance(tolerance, max(self.n_models, 1))
        if used == self.tolerance or self.source == "empty":
            return self
        names = [p.name for p in report_parts() if p.depends_on_tolerance and not p.deep]
        content = compute_report(self.result, tolerance=int(tolerance), n_bootstrap=n_bootstrap, deep=False,
                                 parts=names)
        summary = {**self.summary, **{k: v for k, v in content.summary.items() if k != "notes"}}
        summary["notes"] = content.notes + [n for n in self.notes if n not in content.notes
                                            and not n.startswith("tolerance ")]
        tables, maps = content.tables()
        return replace(self, source="computed", summary=summary, images=_rescored(self.images, content.scores),
                       tables={**self.tables, **tables}, maps={**self.maps, **maps},
                       computed={**self.computed, **_files(content)})

    # ----------------------------------------------------------------------------------------- reading
    @property
    def split_counts(self) -> dict[str, int]:
        """{"trivial": n, "inconclusive": n, "impossible": n}: images in each category of the split."""
        return {name: int(n) for name, n in self.summary["split"]["counts"].items()}

    def text(self) -> str:
        """The summary as `ddd-audit report` prints it."""
        from audit.report.text import format_summary

        return format_summary(self.summary)

    def __str__(self) -> str:
        return self.text()

    def table(self, name: str, *, index_col=None) -> pd.DataFrame | None:
        """A report table by its file name (e.g. "confusion_all.csv"), computed or written; None when absent."""
        if name in self.computed:
            return self.computed[name]
        if self.source in ("current", "computed"):
            return read_report_table(self.result, name, index_col=index_col)
        return None

    @cached_property
    def split(self) -> Split:
        """The report's split (made once) (`audit.metrics.difficulty.Split`); `split.at(t)` for another tolerance."""
        counts = self.images["n_correct"].to_numpy()
        return Split.from_counts(counts, self.n_models, int(self.summary.get("tolerance", self.tolerance)))

    @property
    def tolerance(self) -> int:
        """The tolerance the report's split uses."""
        return int(self.summary.get("tolerance_used", difficulty.max_tolerance(self.n_models)))

    @cached_property
    def models(self) -> pd.DataFrame:
        """One row per finished model: name, kind, group, accuracy, epochs (and where it came from)."""
        return _models_frame(self.result, self.summary.get("models") or [])

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_models(self) -> int:
        return len(self.summary.get("models") or [])

    @property
    def model_names(self) -> list[str]:
        return [m["name"] for m in self.summary.get("models") or []]

    @property
    def image_ids(self) -> np.ndarray:
        return self.images["image_id"].to_numpy()

    @property
    def class_names(self) -> list[str]:
        names = [str(c) for c in self.result.class_names]
        if names:
            return names
        return [str(c) for c in range(int(self.images["label"].max()) + 1)] if len(self.images) else []

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def dataset(self) -> dict:
        """The manifest's dataset facts (its classes left out)."""
        return {k: v for k, v in self.result.manifest.get("dataset", {}).items() if k != "classes"}

    @property
    def dynamics(self) -> dict | None:
        """The dynamics facts (models, base_model, epochs) or None when no model has 2+ epochs."""
        return self.summary.get("dynamics") or None

    @property
    def notes(self) -> list[str]:
        return list(self.summary.get("notes") or [])

    # ----------------------------------------------------------------------------------------- for the figures
    # (audit.plots.paper.FigureSource: what the paper figures read of a report)
    @cached_property
    def groups(self) -> dict:
        """Each model's condition (its group in the models table)."""
        names = self.model_names
        return dict(zip(names, model_fields(self.result, names, "group"), strict=True))

    @property
    def label_issues(self) -> pd.DataFrame | None:
        """The label-issue histogram of the deeper measures, or None."""
        return self.table(DEEP_TABLES["label_issues_histogram"])

    @property
    def tp_histograms(self) -> tuple[np.ndarray, np.ndarray] | None:
        """TP-agreement counts per epoch, observed and under independent models, or None without dynamics."""
        return (self.maps["tp_observed"], self.maps["tp_null"]) if "tp_observed" in self.maps else None

    @property
    def scores(self) -> pd.DataFrame | None:
        """The per-image accessibility and learned epoch, or None when the report has not both."""
        columns = [c for c in ("accessibility", "learned_epoch") if c in self.images.columns]
        return self.images[columns] if len(columns) == 2 else None

    @property
    def categories(self) -> np.ndarray | None:
        return self.images["category"].astype(str).to_numpy() if "category" in self.images.columns else None

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.result.labels)

    @cached_property
    def pixels(self) -> _Pixels | None:
        """The audit's images by index, read one at a time; None when it has none to show (an imported audit
        without its image folder)."""
        result = self.result
        if not result.n_images:
            return None
        try:
            result.image(0)
        except (AuditError, OSError, KeyError):
            return None
        return _Pixels(result)

    # ----------------------------------------------------------------------------------------- the run
    @property
    def state(self) -> str:
        """The run's state: "complete", "running", "interrupted" or "failed"."""
        return self.result.state

    @property
    def state_text(self) -> str:
        return self.result.state_text

    @property
    def complete(self) -> bool:
        return bool(self.result.is_complete)

    @cached_property
    def jobs(self) -> pd.DataFrame:
        """The manifest's jobs: name, kind, group and status."""
        jobs = pd.DataFrame(self.result.manifest.get("jobs", []))
        for col in ("name", "kind", "group", "status"):
            if col not in jobs.columns:
                jobs[col] = pd.Series(dtype=object)
        return jobs[["name", "kind", "group", "status"]]

    @property
    def jobs_done(self) -> int:
        jobs = self.jobs
        return int((jobs["status"] == "done").sum()) if len(jobs) else 0

    @cached_property
    def failures(self) -> dict:
        """{job: its error} of the failed jobs."""
        return AuditDir(self.path).failures()


class _Pixels:
    """The audit's images by index, read one at a time (from images.npy or the dataset's files)."""

    def __init__(self, result: AuditResult):
        self.result = result

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.result.image(int(index)))


def _with_class_names(result: AuditResult) -> pd.DataFrame:
    images = result.images
    if "class_name" in images.columns or not len(images):
        return images
    names = [str(c) for c in result.class_names] or [str(i) for i in range(int(images["label"].max()) + 1)]
    return images.assign(class_name=[names[i] for i in images["label"]])


def _rescored(images: pd.DataFrame, scores: dict, *, drop_written: bool = False) -> pd.DataFrame:
    """The images with the computed per-image scores in place of the written ones; `drop_written` drops every
    written score first (those of a stale report)."""
    if drop_written:
        images = images[[c for c in images.columns if c not in {*REPORT_COLUMNS, *DEEP_COLUMNS}]]
    frame = images.copy()
    for col, values in scores.items():
        frame[col] = values
    return frame


def _files(content) -> dict:
    """The content's tables by file name (DataFrames only)."""
    return {name: value for name, value in content.outputs.items() if isinstance(value, pd.DataFrame)}


def _models_frame(result: AuditResult, summary_models: list[dict]) -> pd.DataFrame:
    if not summary_models:
        return pd.DataFrame(columns=list(MODEL_COLUMNS))
    frame = pd.DataFrame(summary_models)
    for col in MODEL_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[list(MODEL_COLUMNS)]
    extra = [c for c in ("weights_source", "seconds", "device") if c in result.models.columns]
    if extra:
        frame = frame.merge(result.models[["name", *extra]], on="name", how="left")
    frame["group"] = frame["group"].fillna("").astype(str)
    frame["kind"] = frame["kind"].fillna("").astype(str)
    return frame
