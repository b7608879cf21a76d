"""The columns of an import table as a schema: each column's Arrow type, whether it must be there and may
hold empty cells, and its bounds. `check_columns` casts the columns with pyarrow and refuses empty cells,
text in a number column and numbers out of bounds, in one line that names the file, the column, the row
and the values allowed. It runs before anything is written and changes no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from audit.curation.importers.common import ImportDataError
from audit.schemas import MAX_EPOCHS

#: The most classes an import may have (ImageNet-21k has 21,841): a class index beyond the label set could
#: otherwise make matrices of n_classes x n_classes that do not fit in any memory.
MAX_CLASSES = 100_000
MAX_RT_SECONDS = 3600.0


@dataclass(frozen=True)
class Column:
    """One column: `kind` is "text", "class" (a class name or index), "number" or "integer"."""

    name: str
    kind: str
    required: bool = False
    nullable: bool = True
    low: float | None = None
    high: float | None = None
    allowed: str = ""

    @property
    def arrow_type(self) -> pa.DataType | None:
        return {"number": pa.float64(), "integer": pa.int64()}.get(self.kind)


PROBABILITY = "probabilities lie between 0 and 1 (or the cell is empty)"
#: The long table of decisions (`DECISION_TABLE_COLUMNS`).
DECISION_TABLE = (
    Column("maker", "text", required=True, nullable=False, allowed="expected a decision maker's name"),
    Column("image", "text", required=True, nullable=False, allowed="expected an image key"),
    Column("label", "class", required=True, nullable=False, allowed="expected a class name or index"),
    Column("predicted", "class", required=True, nullable=False, allowed="expected a class name or index"),
    Column("true_prob", "number", low=0, high=1, allowed=PROBABILITY),
    Column("top_prob", "number", low=0, high=1, allowed=PROBABILITY),
    Column("epoch", "integer", nullable=False, low=0, high=MAX_EPOCHS,
           allowed=f"expected an integer from 0 to {MAX_EPOCHS:,}"),
    Column("rt", "number", low=0, high=MAX_RT_SECONDS,
           allowed=f"expected a response time from 0 to {MAX_RT_SECONDS:,.0f} seconds (or an empty cell)"),
)
#: One model's prediction file (audit.curation.importers.predictions).
PREDICTION_FILE = (
    Column("image", "text", required=True, nullable=False, allowed="expected an image key"),
    Column("predicted", "class", required=True, nullable=False, allowed="expected a class name or index"),
    Column("label", "class", nullable=False, allowed="expected a class name or index"),
    Column("true_prob", "number", low=0, high=1, allowed=PROBABILITY),
    Column("top_prob", "number", low=0, high=1, allowed=PROBABILITY),
)


def row_text(path, row: int) -> str:
    """Where row `row` (0-based, below the header) is, with its line in a CSV file."""
    if Path(str(path)).suffix.lower() in (".csv", ".tsv", ".txt"):
        return f"row {row} (line {row + 2})"
    return f"row {row}"


def check_columns(frame: pd.DataFrame, columns, path) -> pd.DataFrame:
    """`frame` with its number columns cast to their Arrow types; ImportDataError at the first bad cell."""
    out = {}
    for column in columns:
        if column.name not in frame.columns:
            continue
        values = _as_arrow(frame[column.name], column, path)
        if not column.nullable and values.null_count:
            row = _first(values.is_null())
            raise ImportDataError(f"{path}: column {column.name} is empty in {row_text(path, row)}; "
                                  f"{column.allowed}, one in every row")
        if column.arrow_type is not None:
            _check_bounds(values, column, path)
            out[column.name] = values.to_pandas()
    return frame.assign(**out) if out else frame


def _as_arrow(series: pd.Series, column: Column, path) -> pa.Array:
    """The column as an Arrow array (empty text cells as nulls), cast to its type where it has one."""
    try:
        values = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: read them as text
        values = pa.array(series.map(lambda v: None if pd.isna(v) else str(v)), type=pa.string())
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        trimmed = pc.utf8_trim_whitespace(values)
        values = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, values.type), trimmed)
    if column.arrow_type is None or values.type == column.arrow_type:
        return values
    try:
        return pc.cast(values, column.arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        row, value = _first_uncastable(values, column)
        raise ImportDataError(f"{path}: column {column.name} holds {value!r} in {row_text(path, row)}; "
                              f"{column.allowed}") from None


def _first_uncastable(values: pa.Array, column: Column) -> tuple[int, object]:
    for row, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), column.arrow_type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return row, value
    return 0, values[0].as_py()


def _check_bounds(values: pa.Array, column: Column, path) -> None:
    numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
    bad = ~np.isnan(numbers) & ~np.isfinite(numbers)
    if column.low is not None:
        bad |= numbers < column.low
    if column.high is not None:
        bad |= numbers > column.high
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = values[row].as_py()
        raise ImportDataError(f"{path}: column {column.name} holds {shown!r} in {row_text(path, row)}; "
                              f"{column.allowed}")


def _first(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def check_class_indices(label_max: int, predicted: np.ndarray, path, *, given: int | None) -> None:
    """Without a class list, the classes are the labels' 0..label_max: a predicted index beyond them (or more
    than MAX_CLASSES classes) is refused, before anything of that size is made."""
    n = given if given is not None else label_max + 1
    if given is None and n > MAX_CLASSES:
        raise ImportDataError(f"{path}: column label holds {label_max}; an import has at most {MAX_CLASSES:,} "
                              f"classes (indices 0..{MAX_CLASSES - 1:,})")
    out = (predicted < 0) | (predicted >= n)
    if out.any():
        row = int(np.flatnonzero(out)[0])
        whose = "--classes" if given is not None else "the labels"
        raise ImportDataError(f"{path}: column predicted holds {int(predicted[row])} in {row_text(path, row)}, "
                              f"beyond the {n:,} classes of {whose} (0..{n - 1:,}); give --classes FILE with "
                              "every class")
