"""The report app's options, and the run state of the audit it shows in words.

The audit itself is an `audit.report.Report` (`Report.load`), which `_common` caches keyed by
`audit.store.audit_stamp`; `_frames` shapes the pages' frames from it. Pure, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audit.report import Report

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


# --------------------------------------------------------------------------- run state and warnings
def status_label(data: Report) -> str:
    """The run state for a Status metric: "complete", or e.g. "running (3/5)", "interrupted (3/5)"."""
    if data.state == "complete":
        return "complete"
    return f"{data.state} ({data.jobs_done}/{len(data.jobs)})"


def status_message(data: Report) -> str | None:
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


def near_chance_models(data: Report) -> list[str]:
    """The models the report finds at or near chance accuracy (`difficulty.near_chance`)."""
    chance = data.summary.get("chance") or {}
    if "models" in chance:
        return [str(m) for m in chance["models"] or []]
    return [str(m["name"]) for m in data.summary.get("models", []) if m.get("near_chance")]


def chance_warning(data: Report) -> str | None:
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


def job_table(data: Report) -> pd.DataFrame:
    """The manifest's jobs with their status, plus the error of failed ones."""
    frame = data.jobs.copy()
    frame["error"] = [data.failures.get(n, "") for n in frame["name"]]
    return frame
