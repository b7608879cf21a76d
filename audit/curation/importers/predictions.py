"""A model zoo's predictions: a folder with one file per model (`<model>.parquet` or `<model>.csv`), one row
per image, with the columns image and predicted, and label, true_prob and top_prob where known.

The files are read one at a time into compact arrays (an image id, a class index and two float32
probabilities per decision), never into one long table of text, so that a thousand models on fifty
thousand images fit in a few hundred megabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from audit.curation.importers.columns import PREDICTION_FILE, check_class_indices, check_columns
from audit.curation.importers.common import DecisionSource, ImportDataError, require_columns, store_rows
from audit.curation.importers.readers import read_labels

PREDICTION_SUFFIXES = (".parquet", ".csv")
PREDICTION_COLUMNS = ("image", "predicted")
OPTIONAL_PREDICTION_COLUMNS = ("label", "true_prob", "top_prob")


class _ClassCodes:
    """Class names or indices -> indices, the same way for every file: given by `classes`, or found in the
    data (indices 0..max, or the sorted names)."""

    def __init__(self, classes: list[str] | None):
        self.given = classes
        self.numeric: bool | None = None
        self.names = pd.Index(classes if classes is not None else [], dtype=object)
        self.max_index = -1

    def encode(self, values: pd.Series, where: str, column: str) -> np.ndarray:
        numeric = pd.api.types.is_integer_dtype(values) or bool(values.astype(str).str.fullmatch(r"-?\d+").all())
        if self.numeric is None:
            self.numeric = numeric
        elif numeric != self.numeric:
            raise ImportDataError(f"{where}: column {column} holds {'indices' if numeric else 'class names'}, "
                                  f"the files before it {'indices' if self.numeric else 'class names'}; use one "
                                  "form in every file")
        if numeric:
            codes = pd.to_numeric(values).to_numpy(np.int64)
            n = len(self.given) if self.given is not None else None
            bad = (codes < 0) | ((codes >= n) if n is not None else False)
            if bad.any():
                raise ImportDataError(f"{where}: column {column} holds {int(codes[bad][0])}, outside the "
                                      f"{n} classes of --classes (0..{(n or 1) - 1})")
            self.max_index = max(self.max_index, int(codes.max(initial=-1)))
            return codes
        text = values.astype(str)
        codes = self.names.get_indexer(text)
        if (codes < 0).any():
            unknown = pd.unique(text[codes < 0])
            if self.given is not None:
                raise ImportDataError(f"{where}: column {column} holds {', '.join(map(repr, unknown[:3]))}, not "
                                      f"in the class list ({len(self.given)} classes); add them to --classes FILE")
            self.names = self.names.append(pd.Index(unknown, dtype=object))
            codes = self.names.get_indexer(text)
        return codes

    def finish(self) -> tuple[list[str], np.ndarray | None]:
        """The class list, and (for names found in the data) the map from codes so far to sorted indices."""
        if self.given is not None:
            return list(self.given), None
        if self.numeric:
            return [str(i) for i in range(self.max_index + 1)], None
        order = np.argsort(np.asarray(self.names, dtype=str), kind="stable")
        remap = np.empty(len(order), dtype=np.int64)
        remap[order] = np.arange(len(order))
        return [str(self.names[i]) for i in order], remap


class PredictionFiles(DecisionSource):
    """The decisions of a folder of per-model prediction files, held as arrays (see `read_prediction_files`)."""

    def __init__(self, source: str, classes: list[str], image_keys: pd.Index, labels: np.ndarray,
                 per_model: dict[str, dict[str, np.ndarray]], notes: list[str]):
        self.source, self.classes, self.kind_of_source, self.notes = source, classes, "predictions", notes
        self.image_keys, self.labels, self.per_model = image_keys, labels, per_model
        self._unit_of_image: np.ndarray | None = None

    @property
    def makers(self) -> list[str]:
        return list(self.per_model)

    def kind(self, maker: str) -> str:
        return "model"

    def units(self, split: list[str]) -> pd.DataFrame:
        seen = np.zeros(len(self.image_keys), dtype=np.int64)
        for name in split:
            seen[self.per_model[name]["image"]] += 1
        common = np.flatnonzero(seen == len(split))
        if not len(common):
            raise ImportDataError(f"{self.source}: no image was predicted by every model; the split needs images "
                                  "that all models classified")
        if len(common) < len(self.image_keys):
            self.notes.append(f"{len(self.image_keys) - len(common)} of {len(self.image_keys)} images were not "
                              "predicted by every model and are left out")
        keys = np.asarray(self.image_keys[common], dtype=str)
        common = common[np.argsort(keys, kind="stable")]
        self._unit_of_image = np.full(len(self.image_keys), -1, dtype=np.int64)
        self._unit_of_image[common] = np.arange(len(common))
        return pd.DataFrame({"image": np.asarray(self.image_keys[common], dtype=object), "condition": "",
                             "label": self.labels[common]})

    def rows(self, maker: str) -> pd.DataFrame:
        mine = self.per_model[maker]
        unit = self._unit_of_image[mine["image"]]
        keep = unit >= 0
        n = int(keep.sum())
        nan = np.full(n, np.nan, dtype=np.float32)
        return store_rows(np.zeros(n, dtype=np.int16), unit[keep], mine["predicted"][keep],
                          self.labels[mine["image"][keep]],
                          mine["true_prob"][keep] if "true_prob" in mine else nan,
                          mine["top_prob"][keep] if "top_prob" in mine else nan)


def prediction_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PREDICTION_SUFFIXES)


def looks_like_predictions(folder: Path) -> bool:
    """A folder of .parquet files, or of .csv files whose first has the columns image and predicted."""
    files = prediction_files(folder)
    if not files:
        return False
    if any(p.suffix.lower() == ".parquet" for p in files):
        return True
    return set(PREDICTION_COLUMNS) <= set(pd.read_csv(files[0], nrows=0).columns)


def read_prediction_files(folder: str | Path, *, labels: str | Path | None = None,
                          classes: list[str] | None = None,
                          progress: Callable[[int, int], None] | None = None) -> PredictionFiles:
    """Read a folder of `<model>.parquet` (or `.csv`) prediction files.

    Each has one row per image: image and predicted (a class name or index), and optionally label,
    true_prob (the probability of the true class) and top_prob. Labels come from the files' label column
    (which must agree between files) or from `labels` (a .npy of class indices, for images named 0..n-1,
    or a CSV with the columns image and label). `progress(done, total)` is called after each file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportDataError(f"{folder} does not exist or is not a folder of prediction files")
    files = prediction_files(folder)
    if not files:
        raise ImportDataError(f"{folder} holds no prediction files (<model>.parquet or <model>.csv with the "
                              "columns image and predicted)")
    stems = pd.Series([f.stem for f in files])
    if stems.duplicated().any():
        twice = stems[stems.duplicated()].iloc[0]
        raise ImportDataError(f"{folder} holds {twice}.csv and {twice}.parquet; keep one file per model")
    codes_of = _ClassCodes(classes)
    if labels is not None:
        label_idx, label_images = read_labels(Path(labels), classes)
        keys = pd.Index(label_images.astype(str), dtype=object)
        if keys.has_duplicates:
            raise ImportDataError(f"{labels} lists image {keys[keys.duplicated()][0]!r} twice")
        known_labels = label_idx.astype(np.int64)
        first_maker = None
    else:
        keys = pd.Index([], dtype=object)
        known_labels = np.zeros(0, dtype=np.int64)
        first_maker = np.zeros(0, dtype=np.int32)
    per_model: dict[str, dict[str, np.ndarray]] = {}
    last_image, last_ids = None, None
    for i, f in enumerate(files):
        frame, image_column = _read_one(f, need_label=labels is None)
        if last_image is not None and image_column.equals(last_image):
            ids = last_ids  # a zoo's files usually list the images in one order: no hashing of the names again
        else:
            image = frame["image"].astype(str).to_numpy(dtype=object)
            ids = keys.get_indexer(image)
            if (ids < 0).any():
                fresh = pd.unique(image[ids < 0])
                if labels is not None:
                    raise ImportDataError(f"{f}: images {', '.join(map(repr, fresh[:3]))} are not in the labels "
                                          f"file {labels}; every image needs a label")
                keys = keys.append(pd.Index(fresh, dtype=object))
                known_labels = np.concatenate([known_labels, np.full(len(fresh), -1, dtype=np.int64)])
                first_maker = np.concatenate([first_maker, np.full(len(fresh), i, dtype=np.int32)])
                ids = keys.get_indexer(image)
            twice = np.bincount(ids, minlength=len(keys)) > 1
            if twice.any():
                raise ImportDataError(f"{f}: image {keys[np.flatnonzero(twice)[0]]!r} appears twice; keep one "
                                      "prediction per model and image")
            last_image, last_ids = image_column, ids
        mine = {"image": ids.astype(np.int32),
                "predicted": codes_of.encode(frame["predicted"], str(f), "predicted").astype(np.int32)}
        if labels is None:
            lab = codes_of.encode(frame["label"], str(f), "label")
            new = known_labels[ids] < 0
            known_labels[ids[new]] = lab[new]
            clash = np.flatnonzero(known_labels[ids] != lab)
            if len(clash):
                shown = "; ".join(f"{keys[ids[j]]}: {lab[j]} here, {known_labels[ids[j]]} in "
                                  f"{files[first_maker[ids[j]]].name}" for j in clash[:3])
                raise ImportDataError(f"{f}: images whose label differs from an earlier file's ({shown}); fix the "
                                      "labels so that each image has one")
        for col in ("true_prob", "top_prob"):  # numbers from 0 to 1 or empty (checked on reading)
            if col in frame.columns:
                mine[col] = frame[col].to_numpy(np.float32)
        per_model[f.stem] = mine
        if progress is not None:
            progress(i + 1, len(files))
    if codes_of.numeric and classes is None:  # the labels' classes bound the predictions
        for f in files:
            check_class_indices(int(known_labels.max(initial=0)), per_model[f.stem]["predicted"], f, given=None)
    class_list, remap = codes_of.finish()
    if remap is not None:
        known_labels = remap[known_labels]
        for mine in per_model.values():
            mine["predicted"] = remap[mine["predicted"]].astype(np.int32)
    elif labels is not None and len(class_list) and int(known_labels.max(initial=0)) >= len(class_list):
        class_list = [str(i) for i in range(int(known_labels.max()) + 1)]
    return PredictionFiles(str(folder), class_list, keys, known_labels, per_model, notes=[])


def _read_one(path: Path, *, need_label: bool):
    """One prediction file: its wanted columns as a frame, and its image column as Arrow strings (which
    compare with the previous file's in microseconds)."""
    import pyarrow as pa

    wanted = PREDICTION_COLUMNS + OPTIONAL_PREDICTION_COLUMNS
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            found = [c for c in pq.read_schema(path).names if not c.startswith("__index_level_")]
            table = pq.read_table(path, columns=[c for c in found if c in wanted])
        else:
            frame = pd.read_csv(path)
            found = list(frame.columns)
            table = pa.Table.from_pandas(frame[[c for c in found if c in wanted]], preserve_index=False)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ImportDataError(f"{path} cannot be read as a table ({type(exc).__name__}: {exc})") from None
    needed = PREDICTION_COLUMNS + (("label",) if need_label else ())
    require_columns(pd.DataFrame(columns=found), needed, path)
    if table.num_rows == 0:
        raise ImportDataError(f"{path} holds no predictions")
    columns = [c if c.name != "label" or need_label else replace(c, nullable=True) for c in PREDICTION_FILE]
    frame = check_columns(table.to_pandas(), columns, path)
    image = table.column("image")
    return frame, image if pa.types.is_string(image.type) else image.cast(pa.string())

