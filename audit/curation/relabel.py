"""Corrected labels from a review: read a relabel file (columns image, new_label) and apply it.

`ddd-audit run --relabel FILE` applies it to the validation split of a dataset before any job runs;
`ddd-audit import --relabel FILE` to imported decisions before they are written. Each returns a
record (file name, SHA-256, counts) that the audit's manifest keeps. No printing, no models here.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from audit.data.base import Dataset
from audit.store import AuditDir, AuditError
from audit.store.files import read_people_csv

RELABEL_COLUMNS = ("image", "new_label")


@dataclasses.dataclass(frozen=True)
class Relabel:
    """A relabel file read back: one row per image that gets a new label (rows without one are dropped).

    Attributes
    ----------
    path : Path
    sha256 : str, the file's SHA-256 (hex)
    rows : DataFrame with columns image and new_label, both str
    """

    path: Path
    sha256: str
    rows: pd.DataFrame

    def record(self, n_changed: int) -> dict:
        """What the manifest keeps: the file's name and hash, the images it names, and how many changed."""
        return {"file": self.path.name, "sha256": self.sha256, "n_images": int(len(self.rows)),
                "n_changed": int(n_changed)}


def read_relabel(path: str | Path) -> Relabel:
    """Read a relabel CSV: columns image (an image id, the image's source or key) and new_label (a class
    name or index). Rows with an empty new_label are skipped, so the template that `ddd-audit export
    --subset label-issues` writes can be filled in part."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"--relabel {path} does not exist or is not a file")
    data = path.read_bytes()
    try:
        frame = read_people_csv(path, dtype=str, keep_default_na=False)  # as exported: formula cells quoted
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AuditError(f"--relabel {path} is not a readable CSV ({type(exc).__name__}: {exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in RELABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise AuditError(f"--relabel {path} needs the columns image,new_label; it has "
                         f"{','.join(frame.columns) or 'none'}")
    rows = frame[list(RELABEL_COLUMNS)].apply(lambda s: s.str.strip())
    rows = rows[rows["new_label"] != ""].reset_index(drop=True)
    if rows.empty:
        raise AuditError(f"--relabel {path} gives no new_label in any row; fill in new_label where the label "
                         "should change")
    if (rows["image"] == "").any():
        raise AuditError(f"--relabel {path}: row {int(np.flatnonzero(rows['image'] == '')[0]) + 2} has a "
                         "new_label but no image")
    twice = rows[rows.duplicated("image", keep=False)]
    if len(twice):
        raise AuditError(f"--relabel {path} names image {twice['image'].iloc[0]!r} twice; keep one row per image")
    return Relabel(path=path, sha256=hashlib.sha256(data).hexdigest(), rows=rows)


def label_indices(relabel: Relabel, classes: list[str]) -> np.ndarray:
    """Each row's new_label as a class index: a class name first, else an index in 0..n_classes-1."""
    by_name = {str(c): i for i, c in enumerate(classes)}
    out = np.empty(len(relabel.rows), dtype=np.int64)
    for k, value in enumerate(relabel.rows["new_label"]):
        if value in by_name:
            out[k] = by_name[value]
        elif value.lstrip("-").isdigit() and 0 <= int(value) < len(classes):
            out[k] = int(value)
        else:
            shown = ", ".join(map(str, classes[:12])) + (", ..." if len(classes) > 12 else "")
            raise AuditError(f"--relabel {relabel.path.name}: new_label {value!r} of image "
                             f"{relabel.rows['image'].iloc[k]!r} is not a class (name or index 0..{len(classes) - 1}); "
                             f"classes: {shown}")
    return out


def _positions(relabel: Relabel, sources: list[str], root: str | None, *, files: bool = True) -> np.ndarray:
    """Where each row's image lies among `sources`: its source as recorded, or (`files`) its image id or
    the same file written another way."""
    exact = {s: i for i, s in enumerate(sources)}
    resolved: dict[str, int] | None = None
    out = np.empty(len(relabel.rows), dtype=np.int64)
    missing = []
    for k, key in enumerate(relabel.rows["image"]):
        if key in exact:
            out[k] = exact[key]
            continue
        if not files:
            missing.append(key)
            continue
        if key.isdigit() and int(key) < len(sources):
            out[k] = int(key)
            continue
        if resolved is None:  # the same file written another way (relative, or under the dataset root)
            resolved = {str(Path(s).resolve()): i for i, s in enumerate(sources) if not s.startswith("#")}
        path = Path(key) if Path(key).is_absolute() or root is None else Path(root) / key
        where = resolved.get(str(path.resolve())) if resolved else None
        if where is None:
            missing.append(key)
        else:
            out[k] = where
    if missing:
        raise AuditError(f"--relabel {relabel.path.name}: {len(missing)} image(s) are not among the audited images, "
                         f"e.g. {', '.join(map(repr, missing[:3]))}; give an image id, or the source or image_key "
                         "that images.parquet records")
    if len(set(out.tolist())) < len(out):
        raise AuditError(f"--relabel {relabel.path.name} names the same image twice in different ways")
    return out


def relabel_dataset(dataset: Dataset, relabel: Relabel) -> tuple[Dataset, dict]:
    """The dataset with its validation labels replaced where `relabel` says, and the manifest's record.

    The training split is left as it is: a relabel file corrects the audited (validation) images.
    """
    new = label_indices(relabel, dataset.classes)
    where = _positions(relabel, dataset.val.sources, dataset.root)
    labels = dataset.val.labels.copy()
    n_changed = int((labels[where] != new).sum())
    labels[where] = new
    val = dataclasses.replace(dataset.val, labels=labels)
    return dataclasses.replace(dataset, val=val), relabel.record(n_changed)


def relabel_imported(decisions, relabel: Relabel):
    """Imported decisions (an `audit.curation.importers.DecisionSource`) with the labels of the named images replaced.

    An image is matched by its key (the `image` the source gives it). The true-class probability of a
    relabelled image is no longer known and becomes NaN; correctness is recomputed when the audit is
    written. Works on a long table of decisions (`ImportedDecisions`) and on per-model prediction
    arrays (`PredictionFiles`). Returns (decisions, record); `decisions` is a new object.
    """
    new = label_indices(relabel, list(decisions.classes))
    if hasattr(decisions, "table"):
        keys = pd.unique(decisions.table["image"].astype(str))
    elif hasattr(decisions, "image_keys") and hasattr(decisions, "per_model"):
        keys = np.asarray(decisions.image_keys, dtype=str)
    else:
        raise AuditError(f"--relabel cannot be applied to decisions of the kind {type(decisions).__name__}")
    where = _positions(relabel, list(keys), None, files=False)
    new_of = dict(zip(keys[where], new, strict=True))
    if hasattr(decisions, "table"):
        table = decisions.table
        image = table["image"].astype(str)
        hit = image.isin(new_of.keys()).to_numpy()
        labels = table["label"].to_numpy(np.int64).copy()
        labels[hit] = image[hit].map(new_of).to_numpy(np.int64)
        changed = hit & (labels != table["label"].to_numpy(np.int64))
        n_changed = int(table.loc[changed, "image"].nunique())
        table = table.assign(label=labels)
        table.loc[changed, "true_prob"] = np.nan
        out = dataclasses.replace(decisions, table=table)
    else:
        labels = np.asarray(decisions.labels, dtype=np.int64).copy()
        changed = np.zeros(len(labels), dtype=bool)
        changed[where] = labels[where] != new
        labels[where] = new
        n_changed = int(changed.sum())
        out = copy.copy(decisions)
        out.labels = labels
        out.per_model = {m: {**d, **({"true_prob": np.where(changed[d["image"]], np.nan, d["true_prob"])}
                                     if "true_prob" in d else {})}
                         for m, d in decisions.per_model.items()}
    out.notes = [*decisions.notes, f"relabelled {n_changed} of the {len(new_of)} images named in {relabel.path.name}"]
    return out, relabel.record(n_changed)


def record_relabel(audit_dir: str | Path, record: dict) -> None:
    """Add a relabel record to an audit's manifest (for audits written without the engine: imports)."""
    store = AuditDir(audit_dir)
    manifest = store.read_manifest()
    manifest["relabel"] = record
    store.write_manifest(manifest)
