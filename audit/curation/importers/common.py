"""What the importers share: the long table's columns, the error type, checks of columns and class
lists, and the two things every source hands the writer (`DecisionSource`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from audit.store.decisions import NO_ANSWER  # noqa: F401  (the importers' name for it too)

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




class DecisionSource:
    """What the writer needs from a source of decisions, whatever its layout.

    `units(split)` fixes the audited units, the (image, condition) pairs that every maker in `split` decided,
    sorted, as a frame with columns image, condition and label; `rows(maker)` then gives one maker's
    decisions on those units, in the store's columns (image_id is the unit's row in `units`).
    """

    classes: list[str]
    source: str
    kind_of_source: str
    notes: list[str]

    @property
    def makers(self) -> list[str]:
        raise NotImplementedError

    def kind(self, maker: str) -> str:
        """"model" or "human"."""
        raise NotImplementedError

    def models(self) -> list[str]:
        return [m for m in self.makers if self.kind(m) == "model"]

    def units(self, split: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def rows(self, maker: str) -> pd.DataFrame:
        raise NotImplementedError


def require_columns(frame: pd.DataFrame, needed, path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ImportDataError(f"{path} lacks the column(s) {', '.join(missing)}; found: "
                              f"{', '.join(map(str, frame.columns)) or 'none'}; expected: {', '.join(needed)}")


def read_class_list(path: str | Path) -> list[str]:
    """--classes FILE: one class name per line, in index order (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise ImportDataError(f"class list {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ImportDataError(f"{path} must list at least two distinct class names, one per line")
    return names


def file_name(maker: str) -> str:
    """A maker's name as a file name: letters, digits, '.', '-', '_'; anything else becomes '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", maker).strip(".-") or "maker"


def store_rows(epoch, image_id, predicted, labels, true_prob, top_prob, rt=None) -> pd.DataFrame:
    """One maker's decisions in the store's columns (and rt where known), epoch-major and image-minor."""
    from audit.store import DECISION_COLUMNS

    predicted = np.asarray(predicted)
    frame = pd.DataFrame({
        "epoch": np.asarray(epoch).astype(np.int16), "image_id": np.asarray(image_id).astype(np.int32),
        "predicted": predicted.astype(np.int32), "correct": predicted == np.asarray(labels),
        "true_prob": np.asarray(true_prob, dtype=np.float32), "top_prob": np.asarray(top_prob, dtype=np.float32),
    })
    if rt is not None and np.isfinite(np.asarray(rt, dtype=np.float64)).any():
        frame["rt"] = np.asarray(rt, dtype=np.float64)
    else:
        frame = frame[list(DECISION_COLUMNS)]
    key = frame["epoch"].to_numpy(np.int64) * (1 << 32) + frame["image_id"].to_numpy(np.int64)
    if not (np.diff(key) > 0).all():
        frame = frame.sort_values(["epoch", "image_id"], kind="stable").reset_index(drop=True)
    return frame
