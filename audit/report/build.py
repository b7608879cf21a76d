"""Writing a report and reading it back.

`build_report(result)` computes the report's parts (`audit.report.parts.compute_report`) and writes
`<audit>/report/` plus the per-image scores in images.parquet. It prints nothing. `report_state` and
`read_report_tables` read a written report back. The file names are the store's
(`audit.store.REPORT_TABLES` and its neighbours); the figures are drawn in `audit.plots`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.plots.style import save_figure
from audit.report.deeper import DEEP_COLUMNS
from audit.report.parts import compute_report
from audit.report.training_scores import SCORE_IMAGE_COLUMNS
from audit.store import (
    BASE_IMAGE_COLUMNS,
    REPORT_DIR,
    REPORT_FILES,
    REPORT_MAPS,
    REPORT_TABLES,
    SUMMARY_FILE,
    AuditDir,
    AuditResult,
    write_csv,
    write_json,
    write_npy,
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
#: The tables and maps a report needs before the app reads it back instead of computing it.
REQUIRED_FILES = (SUMMARY_FILE, REPORT_TABLES["histogram"], REPORT_TABLES["per_class"])


def build_report(
    result: AuditResult,
    *,
    tolerance: int = 1,
    n_bootstrap: int = 200,
    random_state: int = 0,
    figures: bool = True,
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
    figures : bool, default True
        Draw the report's figures (PNG). False writes the summary and the tables only (a quick look, or a
        zoo), and removes the figures of an earlier build; `ddd-audit figures` and the app need none.

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
        elif figures:
            _save_figure(store.file(REPORT_DIR, name), value())
            files["figures"].append(name)
    if result.model_names:
        _write_images(result, content.scores)
    summary = content.summary
    summary["files"] = files
    _remove_stale(out, set(files["tables"]) | set(files["figures"]))
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
    if summary.get("dynamics") and not all(result.report_path(name).exists() for name in REPORT_MAPS.values()):
        return "stale"
    return "current"


def read_report_tables(result: AuditResult) -> tuple[dict, dict]:
    """The written tables and decision maps, by their keys in REPORT_TABLES and REPORT_MAPS (absent ones left out).

    The error-consistency tables come back indexed by model name, as written.
    """
    tables, maps = {}, {}
    for key, name in REPORT_TABLES.items():
        frame = read_report_table(result, name, index_col=0 if key in ("ec_all", "ec_inconclusive") else None)
        if frame is not None:
            tables[key] = frame
    for key, name in REPORT_MAPS.items():
        p = result.report_path(name)
        if p.exists():
            maps[key] = np.load(p)
    return tables, maps


def read_report_table(result: AuditResult, name: str, *, index_col=None) -> pd.DataFrame | None:
    """One written report table by its file name (a .csv of report/), or None when it is absent."""
    path = result.report_path(name)
    return read_people_csv(path, index_col=index_col) if path.exists() else None


# --------------------------------------------------------------------------- writing
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
    AuditDir(result.path).write_images(frame)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_csv(path, frame, index=frame.index.name is not None)


def _save_figure(path: Path, fig) -> None:
    save_figure(fig, path.with_suffix(""), (path.suffix.lstrip("."),))


def _remove_stale(out: Path, written: set[str]) -> None:
    """Remove tables and figures of an earlier build that this build did not write."""
    for name in REPORT_FILES:
        if name not in written:
            (out / name).unlink(missing_ok=True)
