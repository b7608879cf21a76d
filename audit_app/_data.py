"""The report app's data: its options, the audit it shows, and the run state in words.

`load_audit_data(path)` reads an audit through the store (`audit.store.load`) and its written
report (`audit.report.read_report_tables`), or computes the report's tables in memory when the
report is missing or stale, as for a running audit. Pure pandas and numpy, no Streamlit:
`_common` caches these functions, keyed by `audit_stamp`, and `_frames` shapes the pages'
frames. Nothing here writes to the audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics import difficulty
from audit.report import REPORT_COLUMNS, compute_report, read_report_tables, report_state
from audit.report.deeper import DEEP_COLUMNS
from audit.store import REPORT_DIR, SUMMARY_FILE, AuditDir, load

MAKE_AUDIT_HELP = (
    "Make one with `make audit` (Fashion-MNIST, quick preset; writes `runs/default`), or with "
    "`ddd-audit run --dataset digits --variants minimal --out runs/digits`. Then open it with "
    "`ddd-audit app runs/default`, or pick it in the sidebar."
)


# --------------------------------------------------------------------------- command line and picker
@dataclass(frozen=True)
class AppArgs:
    """The app's own options: `streamlit run app.py -- --audit DIR --runs DIR`, or `-- --study DIR`.

    `study` (repeatable) starts the app for studies: it then serves observers the experiment
    and, behind the admin token, the results, but never an audit's report.
    """

    audit: str | None = None
    runs: str = "runs"
    study: tuple[str, ...] = ()
    #: `--images-root DIR`: where the images of the audit given by --audit are read (an audit folder that
    #: was not created on this machine shows no image without it); `--follow-symlinks`: also images
    #: behind links that leave that folder
    images_root: str | None = None
    follow_symlinks: bool | None = None

    def image_options(self, path: str | Path) -> dict:
        """`audit.store.load`'s image options for the audit at `path` (the flags apply to --audit only)."""
        if not self.audit or Path(path).resolve() != Path(self.audit).resolve():
            return {}
        return {"images_root": self.images_root, "follow_symlinks": self.follow_symlinks}

    @property
    def serving(self) -> bool:
        """True when the app was started to serve studies (`--study DIR`)."""
        return bool(self.study)


def parse_app_args(argv: Sequence[str]) -> AppArgs:
    """Read `--audit DIR`, `--runs DIR` and `--study DIR` (repeatable) from the script's argv;
    other arguments are ignored.

    Never exits: a flag without a value is ignored (argparse would end the app).
    """
    args = list(argv[1:])
    if "--" in args:
        args = args[args.index("--") + 1 :]
    values: dict[str, str] = {}
    studies: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--follow-symlinks":
            values["follow_symlinks"] = "1"
        for name in ("audit", "runs", "study", "images-root"):
            flag = f"--{name}"
            value = None
            if token == flag and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            elif token.startswith(flag + "=") and len(token) > len(flag) + 1:
                value = token[len(flag) + 1 :]
            if value is None:
                continue
            if name == "study":
                studies.append(value)
            else:
                values[name] = value
        i += 1
    return AppArgs(audit=values.get("audit"), runs=values.get("runs", "runs"), study=tuple(studies),
                   images_root=values.get("images-root"),
                   follow_symlinks=True if values.get("follow_symlinks") else None)


def list_audits(runs_dir: str | Path) -> list[str]:
    """Audit directories (those with a manifest.json) in `runs_dir` or one level below, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [root] if (root / "manifest.json").is_file() else []
    try:
        found += [p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file()]
    except OSError:
        return [str(p) for p in found]
    found.sort(key=lambda p: (-(p / "manifest.json").stat().st_mtime_ns, p.name))
    return [str(p) for p in found]


def audit_stamp(path: str | Path) -> tuple:
    """Cache key part that changes whenever the audit's files change (mtimes of its key files).

    Cheap (a few `stat` calls); a running audit gets a new stamp when a job finishes.
    """
    p = Path(path)
    stamp = []
    for name in ("manifest.json", "images.parquet", "models.parquet", "jobs", "decisions", f"{REPORT_DIR}/{SUMMARY_FILE}"):
        try:
            stamp.append((p / name).stat().st_mtime_ns)
        except OSError:
            stamp.append(0)
    return tuple(stamp)


def audit_problem(path: str | Path | None) -> str | None:
    """Why `path` cannot be shown as an audit, in words for the page; None when it looks like one."""
    if path is None or str(path).strip() == "":
        return "No audit is selected."
    p = Path(path)
    if not p.exists():
        return f"The audit directory `{p}` does not exist."
    if not p.is_dir():
        return f"`{p}` is a file, not an audit directory."
    if not (p / "manifest.json").is_file():
        return (
            f"`{p}` is not an audit directory: it has no `manifest.json`. An audit directory is what "
            "`ddd-audit run ... --out DIR` writes."
        )
    return None


# --------------------------------------------------------------------------- the audit, loaded once
@dataclass
class AuditData:
    """Everything the report pages show, from the report files or (when those are missing or
    stale) computed from the stored decisions.

    Attributes
    ----------
    state : {"complete", "running", "interrupted", "failed"}
        The run's state (`audit.store.run_state`); `state_text` says it in words, with what
        to do (e.g. "interrupted, 3/8 jobs done; rerun the same command to resume").
    report : {"current", "stale", "missing", "empty"}
        Where the tables come from: the report files ("current"), or the
        decisions because the report is absent or older than the finished
        models ("missing", "stale"); "empty" = no finished model yet.
    images : DataFrame, one row per image with the per-image scores
    models : DataFrame with name, kind, group, accuracy, recorded_epochs, final_epoch
    jobs : DataFrame with name, kind, group, status (from the manifest)
    summary : dict shaped like report/summary.json
    tables : dict of DataFrame: histogram, per_class, swaps, tp_by_epoch, ec_all, ec_inconclusive
    maps : dict of ndarray: base and all decision maps, shape (n_rows, n_epochs)
    """

    path: str
    dataset: dict
    class_names: list
    complete: bool
    state: str
    state_text: str
    jobs: pd.DataFrame
    failures: dict
    images: pd.DataFrame
    models: pd.DataFrame
    report: str
    summary: dict
    tables: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def model_names(self) -> list[str]:
        return list(self.models["name"]) if len(self.models) else []

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def dynamics(self) -> dict | None:
        """The dynamics facts (models, base_model, epochs) or None when no model has 2+ epochs."""
        return self.summary.get("dynamics") or None

    @property
    def tolerance(self) -> int:
        """The tolerance of the stored split."""
        return int(self.summary.get("tolerance_used", difficulty.max_tolerance(self.n_models)))

    @property
    def notes(self) -> list[str]:
        return list(self.summary.get("notes") or [])

    @property
    def image_ids(self) -> np.ndarray:
        return self.images["image_id"].to_numpy()

    @property
    def jobs_done(self) -> int:
        return int((self.jobs["status"] == "done").sum()) if len(self.jobs) else 0


def load_audit_data(path: str | Path) -> AuditData:
    """Read an audit for the app: the report files when they match the finished models, else
    the same tables computed from the decisions (a running audit).

    Raises AuditError when `path` is not a readable audit.
    """
    result = load(path)
    manifest = result.manifest
    jobs = pd.DataFrame(manifest.get("jobs", []))
    for col in ("name", "kind", "group", "status"):
        if col not in jobs.columns:
            jobs[col] = pd.Series(dtype=object)
    jobs = jobs[["name", "kind", "group", "status"]]
    dataset = {k: v for k, v in manifest.get("dataset", {}).items() if k != "classes"}
    class_names = [str(c) for c in manifest.get("dataset", {}).get("classes", [])]
    if not class_names:
        class_names = [str(c) for c in range(int(result.images["label"].max()) + 1)]
    images = result.images
    if "class_name" not in images.columns:
        images = images.assign(class_name=[class_names[i] for i in images["label"]])
    base = dict(
        path=str(path),
        dataset=dataset,
        class_names=class_names,
        complete=bool(result.is_complete),
        state=result.state,
        state_text=result.state_text,
        jobs=jobs,
        failures=AuditDir(path).failures(),
    )
    names = result.model_names
    if not names:
        return AuditData(**base, images=images, models=_models_frame(result, []), report="empty",
                         summary={"models": [], "notes": ["no finished models yet"]})
    summary = result.summary()
    state = report_state(result, summary)
    if state == "current":
        tables, maps = read_report_tables(result)
        return AuditData(**base, images=images, models=_models_frame(result, summary["models"]),
                         report=state, summary=summary, tables=tables, maps=maps)
    images, summary, tables, maps = _live_report(result, images)
    return AuditData(**base, images=images, models=_models_frame(result, summary["models"]),
                     report=state, summary=summary, tables=tables, maps=maps)


# --------------------------------------------------------------------------- run state and warnings
def status_label(data: AuditData) -> str:
    """The run state for a Status metric: "complete", or e.g. "running (3/5)", "interrupted (3/5)"."""
    if data.state == "complete":
        return "complete"
    return f"{data.state} ({data.jobs_done}/{len(data.jobs)})"


def status_message(data: AuditData) -> str | None:
    """What the pages say above an audit that is not complete, or None when it is.

    A live run says so; a run whose process is gone (killed, crashed) or whose jobs failed says
    what happened and how to resume, never "still running".
    """
    if data.state == "complete":
        return None
    if data.state == "running":
        others = ", ".join(f"{n} {s}" for s, n in data.jobs["status"].value_counts().items() if s != "done")
        return (
            f"This audit is still running: {data.jobs_done} of {len(data.jobs)} jobs are done"
            f"{f' ({others})' if others else ''}. The pages show the finished models; press **Reload** in "
            "the sidebar to pick up new ones."
        )
    where = " The Jobs table on the Overview shows each error." if data.state == "failed" else ""
    return f"Audit run {data.state_text}. The pages show the finished models.{where}"


def near_chance_models(data: AuditData) -> list[str]:
    """The models the report finds at or near chance accuracy (`difficulty.near_chance`)."""
    chance = data.summary.get("chance") or {}
    if "models" in chance:
        return [str(m) for m in chance["models"] or []]
    return [str(m["name"]) for m in data.summary.get("models", []) if m.get("near_chance")]


def chance_warning(data: AuditData) -> str | None:
    """A warning naming the models at or near chance, or None when there are none."""
    names = near_chance_models(data)
    if not names:
        return None
    accuracy = (data.summary.get("chance") or {}).get("accuracy")
    level = f" ({100 * accuracy:.1f}%, the share of the most common class)" if accuracy is not None else ""
    they = "This model classifies" if len(names) == 1 else f"These {len(names)} models classify"
    return (
        f"{they} at or near chance{level}: {', '.join(names)}. Their trivial/impossible split, dynamics "
        "and error consistency say little; train longer, or check the labels."
    )


def _models_frame(result, summary_models: list[dict]) -> pd.DataFrame:
    cols = ["name", "kind", "group", "accuracy", "recorded_epochs", "final_epoch"]
    if not summary_models:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(summary_models)
    for col in cols:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[cols]
    extra = [c for c in ("weights_source", "seconds", "device") if c in result.models.columns]
    if extra:
        frame = frame.merge(result.models[["name", *extra]], on="name", how="left")
    frame["group"] = frame["group"].fillna("").astype(str)
    frame["kind"] = frame["kind"].fillna("").astype(str)
    return frame


def _live_report(result, images: pd.DataFrame):
    """The report's tables, computed in memory by `compute_report` (no bootstrap, no deeper measures,
    no figures, nothing written): for an audit that is still running or whose report is stale."""
    content = compute_report(result, n_bootstrap=0, deep=False)
    tables, maps = content.tables()
    stale = {*REPORT_COLUMNS, *DEEP_COLUMNS}  # what an older report left: not current
    images = images[[c for c in images.columns if c not in stale]].copy()
    for col, values in content.scores.items():
        images[col] = values
    return images, content.summary, tables, maps


def job_table(data: AuditData) -> pd.DataFrame:
    """The manifest's jobs with their status, plus the error of failed ones."""
    frame = data.jobs.copy()
    frame["error"] = [data.failures.get(n, "") for n in frame["name"]]
    return frame
