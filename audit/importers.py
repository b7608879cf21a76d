"""Decisions that already exist, read into one long table: model zoos' predictions, score arrays, and
model-vs-human's raw data with human observers.

Each reader returns `ImportedDecisions`: a table with one row per decision (columns
`DECISION_TABLE_COLUMNS`) and the class list. `write_imported_audit` turns it into an audit
directory that `report`, the app and `study create` read as they read a run's. Every error names the
file, the column or rows at fault, and what to do.

An audited unit is an image under one condition (model-vs-human shows the same image at several
noise or contrast levels). The split is over the models: the units every model decided at every
recorded epoch. Humans (and any maker who saw part of the units) are stored beside the models, under
humans/, with the units they decided; a missing decision is missing, not wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: One row per decision: who decided (maker, kind), on what (image, label, condition), what (predicted, the
#: probabilities where known), when (epoch) and how fast (rt, seconds, humans only).
DECISION_TABLE_COLUMNS = ("maker", "kind", "image", "label", "predicted", "true_prob", "top_prob", "epoch",
                          "condition", "rt")
REQUIRED_COLUMNS = ("maker", "image", "label", "predicted")
MAKER_KINDS = ("model", "human")
#: model-vs-human's raw-data file names: <dataset>_<subject-or-model>_session_<n>.csv or ..._session-<n>.csv
MVH_FILE_RE = re.compile(r"^(?P<dataset>[^_]+)_(?P<maker>.+)_session[_-](?P<session>\d+)\.csv$")
MVH_COLUMNS = ("subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename")
MVH_HUMAN_RE = re.compile(r"^subject-\d+$")
SCORE_SUFFIXES = (".npy", ".pt", ".pth")


class ImportDataError(ValueError):
    """Decisions that cannot be imported as they are; the message says where and what to do."""


@dataclass
class ImportedDecisions:
    """Decisions read from a source: the long table, the classes, and where they came from."""

    table: pd.DataFrame
    classes: list[str]
    source: str
    kind_of_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def makers(self) -> list[str]:
        return list(dict.fromkeys(self.table["maker"]))

    def models(self) -> list[str]:
        kinds = self.table.drop_duplicates("maker").set_index("maker")["kind"]
        return [m for m in self.makers if kinds[m] == "model"]


SOURCE_FORMATS = ("auto", "table", "scores", "model-vs-human")


def read_decisions_source(source: str | Path, *, source_format: str = "auto", labels: str | Path | None = None,
                          classes: list[str] | None = None) -> ImportedDecisions:
    """Read any of the sources; "auto" tells them apart: a file is a table (or model-vs-human data when it
    has their columns), a folder of arrays is score arrays (which need `labels`), a folder of .csv files
    is model-vs-human raw data."""
    source = Path(source)
    if source_format not in SOURCE_FORMATS:
        raise ImportDataError(f"--format must be one of {', '.join(SOURCE_FORMATS)}, got {source_format!r}")
    if not source.exists():
        raise ImportDataError(f"{source} does not exist")
    if source_format == "auto":
        if source.is_file():  # model-vs-human's columns (a study export), or a table of decisions
            header = set(pd.read_csv(source, nrows=0).columns) if source.suffix.lower() == ".csv" else set()
            source_format = "model-vs-human" if set(MVH_COLUMNS) <= header else "table"
        elif any(p.suffix.lower() in SCORE_SUFFIXES for p in source.iterdir()):
            source_format = "scores"
        else:
            source_format = "model-vs-human"
    if source_format == "scores":
        if labels is None:
            raise ImportDataError(f"{source} holds score arrays; give --labels FILE with each image's class")
        return read_score_arrays(source, labels, classes=classes)
    if labels is not None:
        raise ImportDataError("--labels is for score arrays; tables and model-vs-human data carry their labels")
    if source_format == "table":
        return read_long_table(source, classes=classes)
    return read_model_vs_human(source)


# --------------------------------------------------------------------------- the long table
def read_long_table(path: str | Path, *, classes: list[str] | None = None) -> ImportedDecisions:
    """A CSV or Parquet file with one row per decision (see REQUIRED_COLUMNS and DECISION_TABLE_COLUMNS).

    Labels and predictions may be class names or indices into `classes` (or, without it, 0..max).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportDataError(f"{path} does not exist or is not a file")
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        raise ImportDataError(f"{path}: expected a .csv, .tsv or .parquet table of decisions")
    _require_columns(frame, REQUIRED_COLUMNS, path)
    unknown = sorted(set(frame.columns) - set(DECISION_TABLE_COLUMNS))
    notes = [f"ignored columns {', '.join(unknown)}"] if unknown else []
    table = _normalise(frame, path, classes)
    return ImportedDecisions(table=table, classes=_classes_of(table, classes), source=str(path),
                             kind_of_source="table", notes=notes)


# --------------------------------------------------------------------------- score arrays
def read_score_arrays(folder: str | Path, labels: str | Path, *, classes: list[str] | None = None
                      ) -> ImportedDecisions:
    """A folder of `<model>.npy` (or `.pt`) arrays of logits or probabilities, shape (n_images, n_classes).

    `labels` is a .npy of class indices, or a CSV with a `label` column (and optionally `image`). Rows
    that do not sum to 1 (or hold negatives) are logits and go through a softmax.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportDataError(f"{folder} does not exist or is not a folder of score arrays")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCORE_SUFFIXES)
    if not files:
        raise ImportDataError(f"{folder} holds no score arrays (<model>{', <model>'.join(SCORE_SUFFIXES)})")
    label_idx, images = _read_labels(Path(labels), classes)
    parts = []
    n_classes = None
    for f in files:
        scores = _load_scores(f)
        if scores.ndim != 2:
            raise ImportDataError(f"{f}: expected shape (n_images, n_classes), got {scores.shape}")
        if len(scores) != len(label_idx):
            raise ImportDataError(f"{f} has {len(scores)} rows but {labels} has {len(label_idx)} labels; "
                                  "each array needs one row per labelled image, in the same order")
        if not np.isfinite(scores).all():
            rows = np.flatnonzero(~np.isfinite(scores).all(axis=1))[:3]
            raise ImportDataError(f"{f} holds NaN or infinite scores (rows {', '.join(map(str, rows))}); "
                                  "export finite logits or probabilities")
        if n_classes is None:
            n_classes = scores.shape[1]
        elif scores.shape[1] != n_classes:
            raise ImportDataError(f"{f} has {scores.shape[1]} classes, the other arrays {n_classes}")
        probs = _as_probabilities(scores)
        predicted = probs.argmax(axis=1)
        parts.append(pd.DataFrame({
            "maker": f.stem, "kind": "model", "image": images, "label": label_idx, "predicted": predicted,
            "true_prob": probs[np.arange(len(probs)), label_idx], "top_prob": probs.max(axis=1),
        }))
    if classes is not None and len(classes) != n_classes:
        raise ImportDataError(f"the class list has {len(classes)} classes but the arrays have {n_classes}")
    if int(label_idx.max()) >= n_classes:
        raise ImportDataError(f"{labels} holds label {int(label_idx.max())}, but the arrays have {n_classes} "
                              "classes")
    class_list = classes or [str(i) for i in range(n_classes)]
    table = _normalise(pd.concat(parts, ignore_index=True), folder, class_list)
    return ImportedDecisions(table=table, classes=class_list, source=str(folder), kind_of_source="scores")


def _load_scores(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        except ValueError as exc:
            raise ImportDataError(f"{path} is not a numeric .npy array ({exc})") from None
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors here
        raise ImportDataError(f"{path} is not a tensor saved with torch.save ({type(exc).__name__})") from None
    if not isinstance(obj, torch.Tensor):
        raise ImportDataError(f"{path} holds a {type(obj).__name__}, expected one tensor (n_images, n_classes)")
    return obj.double().numpy()


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that are already probabilities stay; logits go through a (stable) softmax."""
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        return scores
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _read_labels(path: Path, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ImportDataError(f"labels file {path} does not exist")
    if path.suffix.lower() == ".npy":
        labels = np.load(path, allow_pickle=False)
        images = np.array([str(i) for i in range(len(labels))], dtype=object)
    else:
        frame = pd.read_csv(path)
        _require_columns(frame, ("label",), path)
        labels = frame["label"].to_numpy()
        images = (frame["image"].astype(str) if "image" in frame.columns
                  else pd.Series(range(len(frame))).astype(str)).to_numpy(dtype=object)
    labels = np.asarray(labels)
    if labels.dtype.kind in "OUS":
        if classes is None:
            raise ImportDataError(f"{path} holds class names; give --classes FILE to fix their order")
        index = {c: i for i, c in enumerate(classes)}
        bad = [x for x in labels if x not in index]
        if bad:
            raise ImportDataError(f"{path}: labels {', '.join(map(repr, bad[:3]))} are not in the class list")
        labels = np.array([index[x] for x in labels])
    if labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
        raise ImportDataError(f"{path}: labels must be class indices >= 0 or class names")
    return labels.astype(np.int64), images


# --------------------------------------------------------------------------- model-vs-human raw data
def read_model_vs_human(folder: str | Path) -> ImportedDecisions:
    """A model-vs-human `raw-data/<dataset>/` folder: one CSV per decision maker and session; or one CSV
    whose `subj` column names the makers (`ddd-audit study export`'s model-vs-human file).

    Subjects named `subject-NN` are humans, every other name a model. The image key is the text
    after the last `_` of `imagename`, as in model-vs-human's own reader; the part before it (trial,
    experiment, subject, condition) differs between decision makers for the same image.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".csv":  # one file of many makers (our study export)
        files, one_file = [folder], True
    elif folder.is_dir():
        files, one_file = sorted(folder.glob("*.csv")), False
    else:
        raise ImportDataError(f"{folder} does not exist or is not a folder")
    if not files:
        raise ImportDataError(f"{folder} holds no .csv files; expected model-vs-human raw data "
                              "(<dataset>_<subject-or-model>_session_<n>.csv)")
    parts = []
    for f in files:
        match = MVH_FILE_RE.match(f.name)
        if not match and not one_file:
            raise ImportDataError(f"{f.name} does not follow model-vs-human's naming "
                                  "<dataset>_<subject-or-model>_session_<n>.csv; rename or remove it")
        frame = pd.read_csv(f)
        _require_columns(frame, MVH_COLUMNS, f)
        makers = frame["subj"].astype(str) if one_file else pd.Series(match["maker"], index=frame.index)
        human = makers.str.fullmatch(MVH_HUMAN_RE.pattern)
        rt = pd.to_numeric(frame["rt"], errors="coerce")
        # model-vs-human's files hold milliseconds; our study export (one file) holds seconds
        parts.append(pd.DataFrame({
            "maker": makers, "kind": np.where(human, "human", "model"),
            "image": frame["imagename"].astype(str).str.rsplit("_", n=1).str[-1],
            "label": frame["category"].astype(str), "predicted": frame["object_response"].astype(str),
            "condition": frame["condition"].astype(str),
            "rt": np.where(human, rt if one_file else rt / 1000.0, np.nan),
        }))
    frame = pd.concat(parts, ignore_index=True)
    table = _normalise(frame, folder, None)
    return ImportedDecisions(table=table, classes=_classes_of(table, None), source=str(folder),
                             kind_of_source="model-vs-human")


# --------------------------------------------------------------------------- checks shared by the readers
def _require_columns(frame: pd.DataFrame, needed, path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ImportDataError(f"{path} lacks the column(s) {', '.join(missing)}; found: "
                              f"{', '.join(map(str, frame.columns)) or 'none'}; expected: {', '.join(needed)}")


def _classes_of(table: pd.DataFrame, classes: list[str] | None) -> list[str]:
    return list(classes) if classes is not None else list(table.attrs["classes"])


def _normalise(frame: pd.DataFrame, where, classes: list[str] | None) -> pd.DataFrame:
    """Fill optional columns, map labels and predictions to class indices, and check the table."""
    frame = frame.copy()
    if frame.empty:
        raise ImportDataError(f"{where} holds no decisions")
    frame["maker"] = frame["maker"].astype(str)
    frame["image"] = frame["image"].astype(str)
    if "kind" not in frame.columns:
        frame["kind"] = "model"
    frame["kind"] = frame["kind"].fillna("model").astype(str).str.lower()
    bad_kind = sorted(set(frame["kind"]) - set(MAKER_KINDS))
    if bad_kind:
        raise ImportDataError(f"{where}: column kind holds {', '.join(map(repr, bad_kind))}; "
                              f"expected {' or '.join(MAKER_KINDS)}")
    for col, default in (("true_prob", np.nan), ("top_prob", np.nan), ("epoch", 0), ("condition", ""),
                         ("rt", np.nan)):
        if col not in frame.columns:
            frame[col] = default
    frame["condition"] = frame["condition"].fillna("").astype(str)
    frame["epoch"] = pd.to_numeric(frame["epoch"], errors="coerce")
    if frame["epoch"].isna().any() or (frame["epoch"] < 0).any():
        rows = frame.index[frame["epoch"].isna() | (frame["epoch"] < 0)][:3]
        raise ImportDataError(f"{where}: column epoch must hold integers >= 0 (rows {', '.join(map(str, rows))})")
    frame["epoch"] = frame["epoch"].astype(np.int64)
    class_list, frame["label"], frame["predicted"] = _to_indices(frame["label"], frame["predicted"], classes,
                                                                  where)
    kinds = frame.groupby("maker")["kind"].nunique()
    if (kinds > 1).any():
        raise ImportDataError(f"{where}: maker {kinds[kinds > 1].index[0]!r} is both a model and a human")
    dup = frame.duplicated(["maker", "image", "condition", "epoch"], keep=False)
    if dup.any():
        rows = frame[dup].head(3)
        shown = "; ".join(f"{r.maker} on {r.image}{f' ({r.condition})' if r.condition else ''} at epoch {r.epoch}"
                          for r in rows.itertuples())
        raise ImportDataError(f"{where}: the same maker decided the same image twice at one epoch ({shown}); "
                              "keep one decision per maker, image and epoch")
    labels = frame.groupby("image")["label"].nunique()
    if (labels > 1).any():
        conflicts = labels[labels > 1].index[:3]
        shown = "; ".join(
            f"{img}: " + " vs ".join(f"{class_list[lab]} ({', '.join(frame.loc[(frame['image'] == img) & (frame['label'] == lab), 'maker'].unique()[:2])})"  # noqa: E501
                                    for lab in sorted(frame.loc[frame["image"] == img, "label"].unique()))
            for img in conflicts)
        raise ImportDataError(f"{where}: images with different labels from different makers: {shown}; "
                              "fix the labels so that each image has one")
    for col in ("true_prob", "top_prob"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float32)
    frame["rt"] = pd.to_numeric(frame["rt"], errors="coerce")
    frame = frame[list(DECISION_TABLE_COLUMNS)].reset_index(drop=True)
    frame.attrs["classes"] = class_list
    return frame


def _to_indices(labels: pd.Series, predicted: pd.Series, classes: list[str] | None, where
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Class names or indices -> indices into the class list (given, or found in the data)."""
    numeric = all(pd.api.types.is_integer_dtype(s) or _all_int_text(s) for s in (labels, predicted))
    if numeric:
        lab = pd.to_numeric(labels).to_numpy(np.int64)
        pred = pd.to_numeric(predicted).to_numpy(np.int64)
        n = len(classes) if classes is not None else int(max(lab.max(), pred.max())) + 1
        for name, values in (("label", lab), ("predicted", pred)):
            out = (values < 0) | (values >= n)
            if out.any():
                raise ImportDataError(f"{where}: column {name} holds {int(values[out][0])}, outside the "
                                      f"{n} classes (0..{n - 1}); give --classes FILE with every class")
        return (list(classes) if classes is not None else [str(i) for i in range(n)]), lab, pred
    lab_text, pred_text = labels.astype(str), predicted.astype(str)
    if classes is None:
        classes = sorted(set(lab_text) | set(pred_text))
    index = {c: i for i, c in enumerate(classes)}
    for name, values in (("label", lab_text), ("predicted", pred_text)):
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise ImportDataError(f"{where}: column {name} holds {', '.join(map(repr, unknown[:3]))}, not in "
                                  f"the class list ({len(classes)} classes); add them to --classes FILE")
    return list(classes), lab_text.map(index).to_numpy(np.int64), pred_text.map(index).to_numpy(np.int64)


def _all_int_text(series: pd.Series) -> bool:
    return bool(series.astype(str).str.fullmatch(r"-?\d+").all())


def read_class_list(path: str | Path) -> list[str]:
    """--classes FILE: one class name per line, in index order (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise ImportDataError(f"class list {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ImportDataError(f"{path} must list at least two distinct class names, one per line")
    return names


# --------------------------------------------------------------------------- the audit directory
def write_imported_audit(decisions: ImportedDecisions, out: str | Path, *, images_root: str | Path | None = None,
                         force: bool = False) -> Path:
    """Write `decisions` as an audit directory at `out` and return its path.

    Models get decisions/<model>.parquet over the units every model decided (the others are dropped,
    with a note); humans get humans/<name>.parquet with the units they decided among those. Units are
    images under a condition; `images_root` is the folder of the image files, if the app should show them.
    """
    from audit.store import AuditDir, AuditError, current_process, utc_now, write_json, write_parquet

    out = Path(out)
    store = AuditDir(out)
    if out.exists() and not out.is_dir():
        raise ImportDataError(f"--out {out} is a file; give a folder for the audit")
    if out.exists() and any(out.iterdir()) and not force:
        raise AuditError(f"{out} is not empty; choose another --out or pass --force to replace it")
    if images_root is not None and not Path(images_root).is_dir():
        raise ImportDataError(f"--images {images_root} is not a folder")
    table = decisions.table
    models = decisions.models()
    humans = [m for m in decisions.makers if m not in set(models)]
    notes = list(decisions.notes)
    split_by = "models"
    if not models and len(humans) >= 2:  # a study's responses: the observers make the split
        models, humans, split_by = humans, [], "humans"
        notes.append("no models among the decision makers: the split is over the humans")
    files = pd.Series([_file_name(m) for m in decisions.makers], index=decisions.makers)
    if files.duplicated().any():
        clash = files[files.duplicated(keep=False)]
        raise ImportDataError(f"makers {', '.join(map(repr, clash.index[:3]))} would share the file name "
                              f"{clash.iloc[0]!r}; rename them so that they differ in letters or digits")
    if len(models) < 2:
        raise ImportDataError(f"{decisions.source}: the split needs at least two models, found {len(models)}"
                              f"{' (' + ', '.join(models) + ')' if models else ''}; humans do not count")
    units, unit_ids = _units(table, models, notes)
    if force and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(images_root).resolve() if images_root is not None else None
    label_of = table.drop_duplicates("image").set_index("image")["label"]
    images = pd.DataFrame({
        "image_id": np.arange(len(units), dtype=np.int64),
        "label": label_of.loc[units["image"]].to_numpy(np.int64),
        "class_name": [decisions.classes[i] for i in label_of.loc[units["image"]]],
        "split": "val",
        "source": [str(root / key) if root is not None else key for key in units["image"]],
        "image_key": units["image"].to_numpy(),
        "condition": units["condition"].to_numpy(),
    })
    write_parquet(out / "images.parquet", images)
    jobs = []
    kind_of = table.drop_duplicates("maker").set_index("maker")["kind"]
    by_maker = dict(tuple(table.assign(unit_id=unit_ids).groupby("maker", sort=False)))
    for in_split, names in ((True, models), (False, humans)):
        for name in names:
            kind = "human" if kind_of[name] == "human" else "imported"
            rows = _rows_of(by_maker[name])  # a maker in the split covers every unit at every epoch (_units)
            record = _record(name, kind, rows, decisions)
            write_parquet(out / ("decisions" if in_split else "humans") / f"{_file_name(name)}.parquet", rows)
            write_json(out / ("jobs" if in_split else "humans") / f"{_file_name(name)}.json", record)
            jobs.append({"name": _file_name(name), "kind": kind, "group": record["group"], "status": "done",
                         "in_split": in_split})
    store.write_models_table(order=[_file_name(m) for m in models])
    fingerprint = _fingerprint(images)
    manifest = {
        "config": {"import": decisions.source, "source_kind": decisions.kind_of_source,
                   "images": str(root) if root else None, "split_by": split_by},
        "dataset": {"name": f"imported:{Path(decisions.source).name}", "origin": decisions.source,
                    "root": str(root) if root else None, "classes": decisions.classes,
                    "n_classes": len(decisions.classes), "n_val": len(units), "n_train": 0,
                    "fingerprint": fingerprint, "skipped": [],
                    "conditions": sorted(set(units["condition"]) - {""})},
        "seed": 0,
        "notes": notes,
        "jobs": [j for j in jobs if j["in_split"]],
        "humans": [j for j in jobs if not j["in_split"]],
        "process": current_process(),
        "finished_at": utc_now(),
    }
    store.write_manifest(manifest)
    return out


def _units(table: pd.DataFrame, models: list[str], notes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The (image, condition) units that every model decided at every one of its epochs, sorted.

    Returns the units and, per row of `table`, its unit id (-1 for a unit outside the audit).
    """
    codes, keys = pd.factorize(table["image"] + "\x1f" + table["condition"])
    in_split = table["maker"].isin(models).to_numpy()
    groups = pd.factorize(table["maker"] + "\x1f" + table["epoch"].astype(str))[0]
    n_groups = len(np.unique(groups[in_split]))
    # each (model, epoch) decides a unit at most once (checked on reading): count the groups per unit
    seen = np.bincount(codes[in_split], minlength=len(keys))
    common = np.flatnonzero(seen == n_groups)
    if not len(common):
        raise ImportDataError("no image (under one condition) was decided by every model; the split needs "
                              "images that all models classified")
    if len(common) < len(keys):
        notes.append(f"{len(keys) - len(common)} of {len(keys)} images were not decided by every model at every "
                     "epoch and are left out")
    split = pd.Series(keys[common]).str.split("\x1f", n=1, expand=True)
    units = pd.DataFrame({"image": split[0], "condition": split[1]}).sort_values(["image", "condition"],
                                                                                  kind="stable")
    id_of_code = np.full(len(keys), -1, dtype=np.int64)
    id_of_code[common[units.index.to_numpy()]] = np.arange(len(units))
    return units.reset_index(drop=True), id_of_code[codes]


def _rows_of(mine: pd.DataFrame) -> pd.DataFrame:
    """One maker's decisions on the audited units (column unit_id), epoch-major and image-minor, in the
    store's columns (and rt where known)."""
    from audit.store import DECISION_COLUMNS

    mine = mine[mine["unit_id"].to_numpy() >= 0]
    frame = pd.DataFrame({
        "epoch": mine["epoch"].astype(np.int16), "image_id": mine["unit_id"].astype(np.int32),
        "predicted": mine["predicted"].astype(np.int32), "correct": (mine["predicted"] == mine["label"]),
        "true_prob": mine["true_prob"].astype(np.float32), "top_prob": mine["top_prob"].astype(np.float32),
        "rt": mine["rt"].astype(np.float64),
    }).sort_values(["epoch", "image_id"], kind="stable").reset_index(drop=True)
    return frame if mine["rt"].notna().any() else frame[list(DECISION_COLUMNS)]


def _record(name: str, kind: str, rows: pd.DataFrame, decisions: ImportedDecisions) -> dict:
    final = rows[rows["epoch"] == rows["epoch"].max()]
    return {"name": _file_name(name), "kind": kind, "group": "human" if kind == "human" else "imported",
            "maker": name, "source": decisions.source, "accuracy": float(final["correct"].mean()),
            "n_decided": int(len(final)), "epochs": sorted(int(e) for e in rows["epoch"].unique())}


def _file_name(maker: str) -> str:
    """A maker's name as a file name: letters, digits, '.', '-', '_'; anything else becomes '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", maker).strip(".-") or "maker"


def _fingerprint(images: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256()
    for col in ("image_key", "condition", "label"):
        h.update("\n".join(map(str, images[col])).encode())
    return h.hexdigest()[:16]
