"""Finding audits and telling when one changed: the audit picker's list, a cheap change stamp, and why a
folder is not an audit. Reads only names and `stat` results; nothing is written."""

from __future__ import annotations

from pathlib import Path

from audit.store.directory import IMAGES_TABLE, MANIFEST_FILE, MODELS_TABLE, REPORT_DIR, SUMMARY_FILE

MANIFEST = MANIFEST_FILE
#: The files whose change times say that an audit changed (a job finished, a report was written).
STAMP_FILES = (MANIFEST, IMAGES_TABLE, MODELS_TABLE, "jobs", "decisions", f"{REPORT_DIR}/{SUMMARY_FILE}")


def is_audit_dir(path: str | Path) -> bool:
    """Whether `path` is a folder with an audit's manifest."""
    return (Path(path) / MANIFEST).is_file()


def list_audits(runs_dir: str | Path) -> list[str]:
    """Audit directories (those with a manifest.json) in `runs_dir` or one level below, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [root] if is_audit_dir(root) else []
    try:
        found += [p for p in root.iterdir() if p.is_dir() and is_audit_dir(p)]
    except OSError:
        return [str(p) for p in found]
    found.sort(key=lambda p: (-(p / MANIFEST).stat().st_mtime_ns, p.name))
    return [str(p) for p in found]


def audit_stamp(path: str | Path) -> tuple:
    """A cache key part that changes whenever the audit's files change (change times of its key files).

    Cheap (a few `stat` calls); a running audit gets a new stamp when a job finishes.
    """
    p = Path(path)
    stamp = []
    for name in STAMP_FILES:
        try:
            stamp.append((p / name).stat().st_mtime_ns)
        except OSError:
            stamp.append(0)
    return tuple(stamp)


def audit_problem(path: str | Path | None) -> str | None:
    """Why `path` cannot be read as an audit, in words; None when it looks like one."""
    if path is None or str(path).strip() == "":
        return "No audit is selected."
    p = Path(path)
    if not p.exists():
        return f"The audit directory `{p}` does not exist."
    if not p.is_dir():
        return f"`{p}` is a file, not an audit directory."
    if not is_audit_dir(p):
        return (
            f"`{p}` is not an audit directory: it has no `{MANIFEST}`. An audit directory is what "
            "`ddd-audit run ... --out DIR` writes."
        )
    return None
