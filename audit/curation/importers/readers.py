"""The readers of sources that fit in memory: a table of decisions, score arrays, and model-vs-human raw
data. Each returns `ImportedDecisions`; every error names the file, the column or rows at fault, and what
to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.curation.importers.columns import DECISION_TABLE, check_columns
from audit.curation.importers.common import (
    DECISION_TABLE_COLUMNS,
    MVH_COLUMNS,
    MVH_FILE_RE,
    MVH_HUMAN_RE,
    REQUIRED_COLUMNS,
    SCORE_SUFFIXES,
    ImportDataError,
    require_columns,
)
from audit.curation.importers.table import ImportedDecisions, classes_of, normalise


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
    require_columns(frame, REQUIRED_COLUMNS, path)
    frame = check_columns(frame, DECISION_TABLE, path)
    unknown = sorted(set(frame.columns) - set(DECISION_TABLE_COLUMNS))
    notes = [f"ignored columns {', '.join(unknown)}"] if unknown else []
    table = normalise(frame, path, classes)
    return ImportedDecisions(table=table, classes=classes_of(table, classes), source=str(path),
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
    label_idx, images = read_labels(Path(labels), classes)
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
    table = normalise(pd.concat(parts, ignore_index=True), folder, class_list)
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


def read_labels(path: Path, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ImportDataError(f"labels file {path} does not exist")
    if path.suffix.lower() == ".npy":
        labels = np.load(path, allow_pickle=False)
        images = np.array([str(i) for i in range(len(labels))], dtype=object)
    else:
        frame = pd.read_csv(path)
        require_columns(frame, ("label",), path)
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
#: Condition values that mean "this dataset has no conditions": models leave the column empty, humans of the
#: same dataset may write 0 (model-vs-human's cue-conflict, edge and silhouette).
MVH_NO_CONDITION = ("", "0")


def short_imagename(imagename: str) -> str:
    """The image key of a model-vs-human `imagename`, by that project's own rule (`get_short_imagename` in
    modelvshuman/helper/plotting_helper.py): the last `_`-field, or the last two when the second-to-last
    starts with `n0` (an ImageNet WordNet id such as `n04111531_14126.png`), whose trailing number alone
    repeats across classes. The fields before it (trial, experiment, subject, condition) differ between
    decision makers for the same image."""
    fields = imagename.split("_")
    if len(fields) > 1 and fields[-2].startswith("n0"):
        return f"{fields[-2]}_{fields[-1]}"
    return fields[-1]


def read_model_vs_human(folder: str | Path) -> ImportedDecisions:
    """A model-vs-human `raw-data/<dataset>/` folder: one CSV per decision maker and session; or one CSV
    whose `subj` column names the makers (`ddd-audit study export`'s model-vs-human file).

    Read as model-vs-human's own reader reads it (`read_all_csv_files_from_directory`,
    `get_short_imagename`, `ErrorConsistency`):
    - column names in any case (some human files write `Session`);
    - the image key by `short_imagename`;
    - makers named `subject-NN` are humans, every other name a model; the maker is the file's `subj`;
    - `rt` in seconds, as the files hold it (the human response window was 1.5 s); models have none;
    - the classes are the labels' (`category`) classes: an `object_response` outside them (`na`, no answer
      in time) is a wrong decision, never a class, and the notes count such answers per maker;
    - a dataset without conditions is one condition, whether a maker leaves `condition` empty or writes 0.
    Makers who decided no (image, condition) in common with the models stop the import with an error that
    names them (see `ImportedDecisions.units`); none is dropped silently.
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
        frame = _read_mvh_csv(f)
        require_columns(frame, MVH_COLUMNS, f)
        subj = frame["subj"].fillna("").astype(str).str.strip()
        if one_file or (subj != "").all():
            makers = subj
        else:
            makers = pd.Series(match["maker"], index=frame.index)
        if (makers == "").any():
            raise ImportDataError(f"{f}: empty subj in rows {', '.join(map(str, makers.index[makers == ''][:3]))}")
        human = makers.str.fullmatch(MVH_HUMAN_RE.pattern)
        parts.append(pd.DataFrame({
            "maker": makers, "kind": np.where(human, "human", "model"),
            "image": frame["imagename"].fillna("").astype(str).map(short_imagename),
            "label": frame["category"], "predicted": frame["object_response"],
            "condition": frame["condition"].fillna("").astype(str).str.strip(),
            "rt": np.where(human, pd.to_numeric(frame["rt"], errors="coerce"), np.nan),
        }))
    frame = pd.concat(parts, ignore_index=True)
    notes = []
    if set(frame["condition"]) <= set(MVH_NO_CONDITION) and frame["condition"].nunique() > 1:
        frame["condition"] = ""
        notes.append("no conditions: the makers' empty and 0 conditions are one condition")
    elif set(frame["condition"]) <= set(MVH_NO_CONDITION):
        frame["condition"] = ""
    table = normalise(frame, folder, None, other_answers="wrong")
    for maker, answers in table.attrs["other_answers"].items():
        n = sum(answers.values())
        shown = ", ".join(f"{a} x{c}" for a, c in answers.items())
        notes.append(f"{maker}: {n} {'answer' if n == 1 else 'answers'} outside the {len(table.attrs['classes'])} "
                     f"classes ({shown}) counted as wrong")
    return ImportedDecisions(table=table, classes=classes_of(table, None), source=str(folder),
                             kind_of_source="model-vs-human", notes=notes)


def _read_mvh_csv(path: Path) -> pd.DataFrame:
    """One raw-data CSV with lower-cased column names and the text columns kept as written."""
    try:
        frame = pd.read_csv(path, dtype={c: str for c in ("subj", "Subj", "SUBJ", "condition", "Condition",
                                                          "object_response", "category", "imagename")})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ImportDataError(f"{path} is not a readable CSV ({type(exc).__name__})") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if frame.columns.duplicated().any():
        raise ImportDataError(f"{path}: column names repeat when case is ignored "
                              f"({', '.join(frame.columns[frame.columns.duplicated()])})")
    return frame
