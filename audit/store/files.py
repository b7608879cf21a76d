"""The store's files: atomic writes (a temporary name, then a rename) and JSON reading.

A killed writer leaves at most a temporary file (".NAME.XXXX.SUFFIX.tmp"), never half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class AuditError(ValueError):
    """A problem with an audit directory that the user can fix."""


def _atomic_target(path: Path, suffix: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary file beside `path`; it replaces `path` only when the block succeeds."""
    tmp = _atomic_target(Path(path), suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: frames with more cells than this are written by pyarrow's CSV writer (about 8x faster than pandas')
ARROW_CSV_CELLS = 200_000


#: What a spreadsheet reads as the start of a formula (OWASP, "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value):
    """A text cell that a spreadsheet would run as a formula gets a leading `'`; numbers stay as they are.

    Cells that already begin with quotes before such a character get one more, so that `restore_cell`
    gives back exactly the value that was written.
    """
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore_cell(value):
    """The value `neutralise_cell` was given (for tables the tool reads back)."""
    if isinstance(value, str) and _QUOTED.match(value):
        return value[1:]
    return value


def _is_text(dtype) -> bool:
    return (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype))


def _map_text(frame: pd.DataFrame, fn) -> pd.DataFrame:
    out = frame.copy()
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if _is_text(column.dtype):
            out.isetitem(i, column.astype(object).map(fn, na_action="ignore"))
    out.columns = _map_labels(out.columns, fn)
    out.index = _map_labels(out.index, fn)
    return out


def _map_labels(labels: pd.Index, fn) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        return pd.MultiIndex.from_tuples([tuple(fn(v) for v in t) for t in labels], names=labels.names)
    if not _is_text(labels.dtype):
        return labels
    return pd.Index([fn(v) for v in labels], name=fn(labels.name) if labels.name is not None else None)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells, column names and index labels open safely in a spreadsheet."""
    return _map_text(frame, neutralise_cell)


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo `spreadsheet_safe` on a table read back from a CSV the tool wrote."""
    return _map_text(frame, restore_cell)


def read_people_csv(path, **kwargs) -> pd.DataFrame:
    """Read a CSV the tool wrote for people (`write_csv`), with every value as it was before neutralising."""
    return restore_frame(pd.read_csv(path, **kwargs))


def csv_bytes(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """A frame as CSV bytes for a download, neutralised like every CSV written for people."""
    return spreadsheet_safe(frame).to_csv(index=index).encode("utf-8")


def to_people_csv(frame: pd.DataFrame, path, *, index: bool = False) -> None:
    """Write a frame as CSV for people (non-atomic; for a folder that is renamed into place when done)."""
    spreadsheet_safe(frame).to_csv(path, index=index)


def write_csv(path: Path, frame: pd.DataFrame, *, index: bool = False, for_people: bool = True) -> None:
    """Write a frame as CSV atomically; large frames (a 1,000 x 1,000 κ matrix) through pyarrow.

    A CSV is for people unless said otherwise: its formula cells are neutralised (`spreadsheet_safe`);
    `read_people_csv` reads the values back as they were. `for_people=False` writes them verbatim (a
    machine format with rules of its own, such as model-vs-human's raw data).
    """
    if for_people:
        frame = spreadsheet_safe(frame)
    with atomic_path(path, ".csv") as tmp:
        if frame.size > ARROW_CSV_CELLS and _write_csv_arrow(tmp, frame.reset_index() if index else frame):
            return
        frame.to_csv(tmp, index=index)


def _write_csv_arrow(path: Path, frame: pd.DataFrame) -> bool:
    """pyarrow's CSV writer; False (and nothing written) for columns it cannot convert."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    pa_csv.write_csv(table, path)
    return True


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (flushed to disk before the rename)."""
    with atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.flush()
        os.fsync(f.fileno())


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a frame as Parquet atomically.

    Only text columns are dictionary-encoded: for a decision table's numbers the dictionary costs more
    than half the writing time and makes the file larger.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)]
    with atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp, use_dictionary=text or False)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an array as .npy atomically."""
    with atomic_path(path, ".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def write_npz(path: Path, arrays: dict) -> None:
    """Write named arrays as one uncompressed .npz atomically."""
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)
