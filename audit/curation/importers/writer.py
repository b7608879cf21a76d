"""Write any source of decisions as an audit directory that `report`, the app and `study create` read as
they read a run's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.curation.importers.common import DecisionSource, ImportDataError, file_name

SPLIT_BY = ("models", "all")


def write_imported_audit(decisions: DecisionSource, out: str | Path, *, images_root: str | Path | None = None,
                         force: bool = False, split_by: str = "models", progress=None,
                         images_reader: tuple[str, dict] | None = None) -> Path:
    """Write `decisions` as an audit directory at `out` and return its path.

    The split is over the models (`split_by="models"`) or over every maker, humans too (`"all"`). Makers in
    the split get decisions/<name>.parquet over the units they all decided (the others are dropped, with a
    note); the other makers (humans) get humans/<name>.parquet with the units they decided among those.
    Units are images under a condition; `images_root` is the folder of the image files, if the app should
    show them, or `images_reader` (the `--images` spec and its reader, audit.data.table_sources) a table or
    shard source whose keys every image key must be, checked before anything is written. `progress(done,
    total)` is called after each maker's file.
    """
    from audit.store import AuditDir, clear_for_replacement, current_process, utc_now

    if split_by not in SPLIT_BY:
        raise ImportDataError(f"--split-by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    out = Path(out)
    state = _check_out(out, force=force, images_root=images_root)
    models, humans, split_by, notes = _who_splits(decisions, split_by)
    decisions.notes = notes
    units = decisions.units(models)
    if images_reader is not None:
        _check_reader_keys(*images_reader, units["image"].astype(str).tolist())
    if state in ("audit", "begun"):  # replace an audit (--force) or finish what a killed import began
        clear_for_replacement(out)  # the tool's own files; studies/ stays
    out.mkdir(parents=True, exist_ok=True)
    root = Path(images_root).resolve() if images_root is not None else None
    store = AuditDir(out)
    images = _images_frame(units, decisions, root)
    store.write_images(images)
    jobs = _write_makers(store, decisions, models, humans, progress)
    store.write_models_table(order=[file_name(m) for m in models])
    manifest = {
        "config": {"import": decisions.source, "source_kind": decisions.kind_of_source,
                   "images": str(root) if root else (images_reader[0] if images_reader else None),
                   "split_by": split_by},
        "dataset": {"name": f"imported:{Path(decisions.source).name}", "origin": decisions.source,
                    "root": str(root) if root else None, "classes": decisions.classes,
                    "n_classes": len(decisions.classes), "n_val": len(units), "n_train": 0,
                    "fingerprint": _fingerprint(images), "skipped": [],
                    "conditions": sorted(set(units["condition"]) - {""}),
                    **({"reader": images_reader[1]} if images_reader else {})},
        "seed": 0,
        "notes": notes,
        "jobs": [j for j in jobs if j["in_split"]],
        "humans": [j for j in jobs if not j["in_split"]],
        "process": current_process(),
        "finished_at": utc_now(),
    }
    store.write_manifest(manifest)
    return out


def _check_out(out: Path, *, force: bool, images_root) -> str:
    """The state of `--out` (audit.store.refuse_foreign), after refusing what must not be written over."""
    from audit.store import AuditError, refuse_foreign

    if out.exists() and not out.is_dir():
        raise ImportDataError(f"--out {out} is a file; give a folder for the audit")
    state = refuse_foreign(out)  # someone else's files: refused, --force or not
    if state == "audit" and not force:
        raise AuditError(f"{out} holds an audit; choose another --out or pass --force to replace it")
    if images_root is not None and not Path(images_root).is_dir():
        raise ImportDataError(f"--images {images_root} is not a folder")
    return state


def _who_splits(decisions: DecisionSource, split_by: str) -> tuple[list, list, str, list]:
    """(makers in the split, the other makers, split_by as used, notes), checked before anything is written."""
    makers = decisions.makers
    check_maker_names(makers)
    models = makers if split_by == "all" else decisions.models()
    humans = [m for m in makers if m not in set(models)]
    notes = list(decisions.notes)
    if split_by == "all" and any(decisions.kind(m) == "human" for m in makers):
        notes.append("--split-by all: humans and models together make the split")
    if not models and len(humans) >= 2:  # a study's responses: the observers make the split
        models, humans, split_by = humans, [], "humans"
        notes.append("no models among the decision makers: the split is over the humans")
    files = pd.Series([file_name(m) for m in makers], index=makers)
    if files.duplicated().any():
        clash = files[files.duplicated(keep=False)]
        raise ImportDataError(f"makers {', '.join(map(repr, clash.index[:3]))} would share the file name "
                              f"{clash.iloc[0]!r}; rename them so that they differ in letters or digits")
    if len(models) < 2:
        raise ImportDataError(f"{decisions.source}: the split needs at least two models, found {len(models)}"
                              f"{' (' + ', '.join(models) + ')' if models else ''}; humans do not count"
                              f"{' unless --split-by all' if humans else ''}")
    return models, humans, split_by, notes


def _images_frame(units: pd.DataFrame, decisions: DecisionSource, root: Path | None) -> pd.DataFrame:
    """images.parquet's rows: one per unit (an image under a condition)."""
    labels = units["label"].to_numpy(np.int64)
    return pd.DataFrame({
        "image_id": np.arange(len(units), dtype=np.int64),
        "label": labels,
        "class_name": np.asarray(decisions.classes, dtype=object)[labels],
        "split": "val",
        "source": [str(root / key) if root is not None else key for key in units["image"]],
        "image_key": units["image"].to_numpy(),
        "condition": units["condition"].to_numpy(),
    })


def _write_makers(store, decisions: DecisionSource, models: list, humans: list, progress) -> list[dict]:
    """Each maker's decisions and record (the split's under decisions/ and jobs/, the others under humans/)."""
    from audit.store import write_json, write_parquet

    jobs = []
    total = len(models) + len(humans)
    for in_split, names in ((True, models), (False, humans)):
        for name in names:
            kind = "human" if decisions.kind(name) == "human" else "imported"
            rows = decisions.rows(name)  # a maker in the split covers every unit at every epoch
            record = _record(name, kind, rows, decisions)
            write_parquet(store.file("decisions" if in_split else "humans", f"{file_name(name)}.parquet"), rows)
            write_json(store.file("jobs" if in_split else "humans", f"{file_name(name)}.json"), record)
            jobs.append({"name": file_name(name), "kind": kind, "group": record["group"], "status": "done",
                         "in_split": in_split})
            if progress is not None:
                progress(len(jobs), total)
    return jobs


def _check_reader_keys(spec: str, reader: dict, keys: list[str]) -> None:
    """Every image key must be a key (row index or __key__) of the `--images` table or shard source."""
    from audit.data.base import DatasetError
    from audit.data.table_sources import records_by_key

    try:
        records_by_key(reader, keys)
    except DatasetError as exc:
        raise ImportDataError(f"--images {spec}: {exc}") from None


def check_maker_names(makers) -> None:
    """Refuse a maker whose name looks like a path (a separator or '..'); the file name that `file_name`
    makes of every other name follows the store's name rule (audit.store.safety.check_name)."""
    from audit.store.safety import UnsafeNameError, check_name

    for maker in makers:
        text = str(maker)
        if "/" in text or "\\" in text or ".." in text:
            raise UnsafeNameError(f"maker name {text!r} holds a path separator or '..'; rename the maker")
        check_name(file_name(text), "maker file name")


def _record(name: str, kind: str, rows: pd.DataFrame, decisions: DecisionSource) -> dict:
    final = rows[rows["epoch"] == rows["epoch"].max()]
    return {"name": file_name(name), "kind": kind, "group": "human" if kind == "human" else "imported",
            "maker": name, "source": decisions.source, "accuracy": float(final["correct"].mean()),
            "n_decided": int(len(final)), "n_no_answer": int((final["predicted"] < 0).sum()),
            "epochs": sorted(int(e) for e in rows["epoch"].unique())}


def _fingerprint(images: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256()
    for col in ("image_key", "condition", "label"):
        h.update("\n".join(map(str, images[col])).encode())
    return h.hexdigest()[:16]
