"""Decisions as one long table (`DECISION_TABLE_COLUMNS`), the form of every source that fits in memory:
a table of decisions, score arrays and model-vs-human raw data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audit.curation.importers.columns import check_class_indices
from audit.curation.importers.common import (
    DECISION_TABLE_COLUMNS,
    MAKER_KINDS,
    NO_ANSWER,
    DecisionSource,
    ImportDataError,
    store_rows,
)


@dataclass
class ImportedDecisions(DecisionSource):
    """Decisions read from a source: the long table, the classes, and where they came from."""

    table: pd.DataFrame
    classes: list[str]
    source: str
    kind_of_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def makers(self) -> list[str]:
        return list(dict.fromkeys(self.table["maker"]))

    def kind(self, maker: str) -> str:
        return str(self._kinds()[maker])

    def models(self) -> list[str]:
        kinds = self._kinds()
        return [m for m in self.makers if kinds[m] == "model"]

    def _kinds(self) -> pd.Series:
        return self.table.drop_duplicates("maker").set_index("maker")["kind"]

    def units(self, split: list[str]) -> pd.DataFrame:
        units, unit_ids = _units(self.table, split, self.notes)
        _check_every_maker_shares(self.table, unit_ids, split)
        label_of = self.table.drop_duplicates("image").set_index("image")["label"]
        units["label"] = label_of.loc[units["image"]].to_numpy(np.int64)
        self._by_maker = dict(tuple(self.table.assign(unit_id=unit_ids).groupby("maker", sort=False)))
        return units

    def rows(self, maker: str) -> pd.DataFrame:
        mine = self._by_maker[maker]
        mine = mine[mine["unit_id"].to_numpy() >= 0]
        rt = mine["rt"].to_numpy(np.float64) if mine["rt"].notna().any() else None
        return store_rows(mine["epoch"], mine["unit_id"], mine["predicted"], mine["label"], mine["true_prob"],
                          mine["top_prob"], rt)


def classes_of(table: pd.DataFrame, classes: list[str] | None) -> list[str]:
    return list(classes) if classes is not None else list(table.attrs["classes"])


def normalise(frame: pd.DataFrame, where, classes: list[str] | None, *, other_answers: str = "error"
              ) -> pd.DataFrame:
    """Fill optional columns, map labels and predictions to class indices, and check the table.

    `other_answers="wrong"` (model-vs-human): the classes are the labels' classes, and an answer outside them
    (`na`, no answer in time) is a wrong decision stored as `NO_ANSWER`, counted per maker in
    `attrs["other_answers"]`; `"error"` (every other source) refuses it.
    """
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
    other = {}
    if other_answers == "wrong":
        class_list, frame["label"], frame["predicted"], other = _to_indices_answers_outside(
            frame["label"], frame["predicted"], frame["maker"], classes, where)
    else:
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
    frame.attrs["other_answers"] = other
    return frame


def _to_indices_answers_outside(labels: pd.Series, predicted: pd.Series, makers: pd.Series,
                                classes: list[str] | None, where) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    """Class names -> indices, where the classes are the labels' (or `classes`) and any other answer is
    `NO_ANSWER`. Returns the class list, labels, predictions and {maker: {answer: count}} of other answers."""
    lab_text = labels.fillna("").astype(str).str.strip()
    pred_text = predicted.fillna("").astype(str).str.strip()
    if (lab_text == "").any():
        rows = lab_text.index[lab_text == ""][:3]
        raise ImportDataError(f"{where}: empty label (category) in rows {', '.join(map(str, rows))}")
    if classes is None:
        classes = sorted(set(lab_text))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(lab_text) - set(index))
    if unknown:
        raise ImportDataError(f"{where}: labels {', '.join(map(repr, unknown[:3]))} are not in the class list "
                              f"({len(classes)} classes); add them to --classes FILE")
    pred = pred_text.map(index)
    outside = pred.isna()
    other: dict[str, dict[str, int]] = {}
    if outside.any():
        counts = pd.DataFrame({"maker": makers[outside].astype(str), "answer": pred_text[outside]}).value_counts()
        for (maker, answer), n in counts.sort_index().items():
            other.setdefault(maker, {})[answer or "(empty)"] = int(n)
    return (list(classes), lab_text.map(index).to_numpy(np.int64),
            pred.fillna(NO_ANSWER).to_numpy(np.int64), other)


def _to_indices(labels: pd.Series, predicted: pd.Series, classes: list[str] | None, where
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Class names or indices -> indices into the class list (given, or found in the data)."""
    numeric = all(pd.api.types.is_integer_dtype(s) or _all_int_text(s) for s in (labels, predicted))
    if numeric:
        lab = pd.to_numeric(labels).to_numpy(np.int64)
        pred = pd.to_numeric(predicted).to_numpy(np.int64)
        if (lab < 0).any():
            raise ImportDataError(f"{where}: column label holds {int(lab[lab < 0][0])}; class indices are 0 or more")
        n = len(classes) if classes is not None else int(lab.max()) + 1
        out = lab >= n
        if out.any():
            raise ImportDataError(f"{where}: column label holds {int(lab[out][0])}, outside the {n} classes "
                                  f"(0..{n - 1}); give --classes FILE with every class")
        check_class_indices(int(lab.max()), pred, where, given=len(classes) if classes is not None else None)
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
        raise ImportDataError("no image (under one condition) was decided by every maker in the split; the split needs "
                              f"images that all of them classified ({_why_nothing_shared(table, models)})")
    if len(common) < len(keys):
        notes.append(f"{len(keys) - len(common)} of {len(keys)} images were not decided by every maker in the split "
                     "at every epoch and are left out")
    split = pd.Series(keys[common]).str.split("\x1f", n=1, expand=True)
    units = pd.DataFrame({"image": split[0], "condition": split[1]}).sort_values(["image", "condition"],
                                                                                  kind="stable")
    id_of_code = np.full(len(keys), -1, dtype=np.int64)
    id_of_code[common[units.index.to_numpy()]] = np.arange(len(units))
    return units.reset_index(drop=True), id_of_code[codes]


def _check_every_maker_shares(table: pd.DataFrame, unit_ids: np.ndarray, split: list[str]) -> None:
    """Refuse makers outside the split (humans) who decided none of the audited units: they would vanish."""
    covered = pd.Series(unit_ids >= 0, index=table.index).groupby(table["maker"], sort=False).any()
    lost = [m for m in covered.index[~covered.to_numpy()] if m not in set(split)]
    if lost:
        raise ImportDataError(
            f"{len(lost)} {'maker' if len(lost) == 1 else 'makers'} ({', '.join(lost[:5])}"
            f"{', ...' if len(lost) > 5 else ''}) decided none of the images that the split's makers all decided; "
            f"{_why_nothing_shared(table, [lost[0], *split])}; make their image names and conditions match, "
            "or leave them out")


def _why_nothing_shared(table: pd.DataFrame, makers: list[str]) -> str:
    """Why some makers share no (image, condition): different conditions, or different image names."""
    mine = table[table["maker"].isin(makers)]
    conditions = mine.groupby("maker", sort=False)["condition"].unique()
    kinds = {tuple(sorted(c)) for c in conditions}
    if len(kinds) > 1:
        shown = "; ".join(f"{m}: {', '.join(repr(c) for c in sorted(v)[:4])}" for m, v in conditions.items())
        return f"their conditions differ ({shown})"
    images = mine.groupby("maker", sort=False)["image"].unique()
    shown = "; ".join(f"{m}: {', '.join(sorted(v)[:2])}" for m, v in list(images.items())[:3])
    return f"their image names differ (e.g. {shown})"
