"""The decision files: one table per model and split, every image at every recorded epoch.

`decisions_frame` builds the table a job writes. `read_decisions` reads one back as arrays, only
the columns asked for; AuditResult (the report, the study builder) and the app read decisions
through it, and `read_many` reads several models at once.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from audit.metrics._validate import NO_ANSWER  # noqa: F401  (`predicted` of a decision with no answer)
from audit.store.files import AuditError

DECISION_COLUMNS = ("epoch", "image_id", "predicted", "correct", "true_prob", "top_prob")
DECISION_FIELDS = ("predicted", "correct", "true_prob", "top_prob")
#: Optional floats a trainer records beside the decisions (audit.metrics.training_scores): the margin
#: (true-class logit minus the largest other logit) and the sum of squared probabilities. Audits written
#: before them, and imported or pretrained models, lack these columns; `has_fields` says which do.
SCORE_FIELDS = ("margin", "prob_sq_sum")


def decision_path(audit: str | os.PathLike, model: str, split: str = "val") -> Path:
    """decisions/<model>.parquet for the validation split, decisions_<split>/<model>.parquet otherwise."""
    folder = "decisions" if split == "val" else f"decisions_{split}"
    return Path(audit) / folder / f"{model}.parquet"


def decisions_frame(
    epochs: Sequence[int],
    image_ids: np.ndarray,
    predicted: np.ndarray,
    true_prob: np.ndarray,
    top_prob: np.ndarray,
    labels: np.ndarray,
    *,
    margin: np.ndarray | None = None,
    prob_sq_sum: np.ndarray | None = None,
) -> pd.DataFrame:
    """Build the long decision table from per-epoch arrays.

    Parameters
    ----------
    epochs : sequence of int, length n_epochs
    image_ids, labels : ndarray of shape (n_images,)
    predicted, true_prob, top_prob : ndarray of shape (n_epochs, n_images)
    margin, prob_sq_sum : ndarray of shape (n_epochs, n_images), optional
        The SCORE_FIELDS columns; left out of the table when not given.
    """
    predicted = np.asarray(predicted)
    n_epochs, n_images = predicted.shape
    if len(epochs) != n_epochs or len(image_ids) != n_images:
        raise ValueError(
            f"decisions have shape {predicted.shape} but there are {len(epochs)} epochs "
            f"and {len(image_ids)} images"
        )
    return pd.DataFrame(
        {
            "epoch": np.repeat(np.asarray(epochs, dtype=np.int16), n_images),
            "image_id": np.tile(np.asarray(image_ids, dtype=np.int32), n_epochs),
            "predicted": predicted.astype(np.int32).ravel(),
            "correct": (predicted == np.asarray(labels)[None, :]).ravel(),
            "true_prob": np.asarray(true_prob, dtype=np.float32).ravel(),
            "top_prob": np.asarray(top_prob, dtype=np.float32).ravel(),
            **{name: np.asarray(values, dtype=np.float32).ravel()
               for name, values in (("margin", margin), ("prob_sq_sum", prob_sq_sum)) if values is not None},
        }
    )


def decision_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a decision table to store: DECISION_COLUMNS and the SCORE_FIELDS it has."""
    return [*DECISION_COLUMNS, *(f for f in SCORE_FIELDS if f in frame.columns)]


def has_fields(audit: str | os.PathLike, model: str, fields: Sequence[str], split: str = "val") -> bool:
    """Whether a model's decision file has all `fields` (read from the Parquet schema only)."""
    try:
        names = set(pq.read_schema(decision_path(audit, model, split)).names)
    except OSError:
        return False
    return set(fields) <= names


# --------------------------------------------------------------------------- reading
def read_decisions(audit: str | os.PathLike, model: str, fields: Sequence[str], image_ids: np.ndarray,
                   split: str = "val") -> tuple[np.ndarray, dict]:
    """One model's decisions as arrays.

    Parameters
    ----------
    audit : the audit directory
    fields : some of DECISION_FIELDS and SCORE_FIELDS; only these columns are read
    image_ids : ndarray of int, the audit's image ids, ascending (images.parquet)

    Returns
    -------
    epochs : ndarray of int, the recorded epochs, ascending (0 = before training)
    arrays : dict of ndarray, one per field, each of shape (n_epochs, n_images) in `image_ids` order

    The engine writes a file epoch by epoch in image order. That is checked once per file version
    (path, mtime, size); a file in another order is put in place by epoch and image id. Raises
    AuditError when the file is missing or does not hold every image once at every epoch.
    """
    fields = tuple(fields)
    for f in fields:
        if f not in DECISION_FIELDS + SCORE_FIELDS:
            raise ValueError(f"field must be one of {DECISION_FIELDS + SCORE_FIELDS}, got {f!r}")
    file = decision_path(audit, model, split)
    try:
        stat = file.stat()
    except OSError:
        raise AuditError(f"{model} has no decisions on the {split} split") from None
    image_ids = np.asarray(image_ids)
    n = len(image_ids)
    if n and image_ids[0] == 0 and image_ids[-1] == n - 1:  # ids 0..n-1 (sorted and unique)
        epochs = _layout(str(file), stat.st_mtime_ns, stat.st_size, n)
        if epochs is not None:
            table = pq.read_table(file, columns=list(fields), use_threads=False)
            return epochs.copy(), {f: table.column(f).to_numpy(zero_copy_only=False).reshape(len(epochs), n)
                                   for f in fields}
    table = pq.read_table(file, columns=["epoch", "image_id", *fields], use_threads=False)
    epoch = table.column("epoch").to_numpy()
    ids = table.column("image_id").to_numpy()
    epochs = np.unique(epoch)
    pos = np.clip(np.searchsorted(image_ids, ids), 0, max(n - 1, 0))
    row = np.searchsorted(epochs, epoch)
    if (n == 0 or len(epoch) != len(epochs) * n or not (image_ids[pos] == ids).all()
            or not (np.bincount(row * n + pos, minlength=len(epoch)) == 1).all()):
        raise AuditError(
            f"{model}: {len(epoch)} decisions do not cover the {n} images at each of {len(epochs)} epochs"
        )
    out = {}
    for f in fields:
        values = table.column(f).to_numpy(zero_copy_only=False)
        arr = np.empty((len(epochs), n), dtype=values.dtype)
        arr[row, pos] = values
        out[f] = arr
    return epochs, out


@functools.lru_cache(maxsize=4096)
def _layout(file: str, mtime_ns: int, size: int, n_images: int) -> np.ndarray | None:
    """The epochs of a decision file whose rows run epoch by epoch over image ids 0..n-1, else None.

    Cached per file version (path, mtime, size): a rewritten file is checked again.
    """
    table = pq.read_table(file, columns=["epoch", "image_id"], use_threads=False)
    epoch = table.column("epoch").to_numpy()
    ids = table.column("image_id").to_numpy()
    n_epochs = len(epoch) // n_images
    if len(epoch) != n_epochs * n_images or n_epochs == 0:
        return None
    ep2 = epoch.reshape(n_epochs, n_images)
    if not ((ep2 == ep2[:, :1]).all() and (np.diff(ep2[:, 0]) > 0).all()):
        return None
    if not (ids.reshape(n_epochs, n_images) == np.arange(n_images)[None, :]).all():
        return None
    return ep2[:, 0].copy()


def read_many(audit: str | os.PathLike, models: Sequence[str], fields: Sequence[str], image_ids: np.ndarray,
              split: str = "val") -> list[tuple[np.ndarray, dict]]:
    """`read_decisions` for several models, in a few threads (Parquet decoding releases the GIL)."""
    image_ids = np.asarray(image_ids)
    workers = max(1, min(4, 2 * (os.cpu_count() or 1), len(models)))
    if workers == 1:
        return [read_decisions(audit, m, fields, image_ids, split) for m in models]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda m: read_decisions(audit, m, fields, image_ids, split), models))


def final_decisions(audit: str | os.PathLike, models: Sequence[str], fields: Sequence[str],
                    image_ids: np.ndarray) -> tuple[dict, dict]:
    """Decisions at each model's final recorded epoch.

    Returns
    -------
    final : dict of ndarray, one per field, each of shape (n_images, n_models)
    epochs : dict, model -> ndarray of its recorded epochs
    """
    cached = _FinalCache(audit, models, image_ids)
    final, epochs = cached.read(fields)
    todo = [f for f in fields if f not in final]
    if todo or epochs is None:
        runs = read_many(audit, models, todo or fields[:1], image_ids)
        fresh = {f: np.stack([arrays[f][-1] for _, arrays in runs], axis=1) if runs
                 else np.empty((len(image_ids), 0)) for f in todo}
        epochs = {m: e for m, (e, _) in zip(models, runs, strict=True)}
        cached.write(fresh, epochs)
        final.update(fresh)
    return {f: final[f] for f in fields}, epochs


#: where final_decisions keeps each field's (n_images, n_models) matrix, beside a record of the files it read
FINAL_CACHE_DIR = "cache"


class _FinalCache:
    """The final-epoch matrices of a set of decision files, kept as .npy in the audit's cache/ folder.

    Reading a thousand decision files takes seconds; one matrix per field takes milliseconds. The
    matrices are valid while the models, the image ids and every file's size and mtime are those
    recorded beside them; anything else reads the files again. A read-only audit is simply not cached.
    """

    def __init__(self, audit, models: Sequence[str], image_ids: np.ndarray):
        self.folder = Path(audit) / FINAL_CACHE_DIR
        stats = []
        for m in models:
            try:
                st = os.stat(decision_path(audit, m))
                stats.append([m, st.st_mtime_ns, st.st_size])
            except OSError:
                stats.append([m, None, None])
        import hashlib

        h = hashlib.sha256(json.dumps(stats).encode())
        h.update(np.ascontiguousarray(np.asarray(image_ids, dtype=np.int64)).tobytes())
        self.key = h.hexdigest()[:20]
        self.enabled = bool(models) and all(s[1] is not None for s in stats)

    def _path(self, field: str) -> Path:
        return self.folder / f"final-{field}-{self.key}.npy"

    def read(self, fields: Sequence[str]) -> tuple[dict, dict | None]:
        if not self.enabled:
            return {}, None
        out = {}
        for f in fields:
            try:
                out[f] = np.load(self._path(f), allow_pickle=False)
            except (OSError, ValueError):
                continue
        try:
            epochs = {m: np.asarray(e, dtype=np.int64)
                      for m, e in json.loads((self.folder / f"final-epochs-{self.key}.json").read_text()).items()}
        except (OSError, ValueError):
            epochs = None
        return out, epochs

    def missing(self, fields: Sequence[str]) -> list[str]:
        """The fields not kept yet for these files (a report rebuilt over the same files writes nothing)."""
        return [f for f in fields if not self._path(f).exists()] if self.enabled else []

    def write(self, arrays: dict, epochs: dict) -> None:
        if not self.enabled:
            return
        from audit.store.files import atomic_path
        from audit.store.safety import inside

        try:
            self.folder = inside(self.folder.parent, self.folder.name)  # a link out of the audit: not written
        except AuditError:
            return
        try:
            self.folder.mkdir(exist_ok=True)
            for old in self.folder.glob("final-*"):
                if self.key not in old.name:
                    old.unlink(missing_ok=True)  # an earlier version of the files
            for f, arr in arrays.items():
                with atomic_path(self._path(f), ".npy") as tmp, open(tmp, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
            with atomic_path(self.folder / f"final-epochs-{self.key}.json", ".json") as tmp:
                tmp.write_text(json.dumps({m: [int(x) for x in e] for m, e in epochs.items()}))
        except OSError:  # a read-only audit: read the files each time
            pass


def decisions_by_epoch(audit: str | os.PathLike, models: Sequence[str], fields: Sequence[str],
                       image_ids: np.ndarray) -> tuple[np.ndarray, dict]:
    """Decision fields over the epochs that all `models` share.

    Returns
    -------
    epochs : ndarray of int, shape (n_epochs,)
        The shared epochs (the shortest run's; longer runs are cut to it).
    cubes : dict of ndarray, one per field, each of shape (n_images, n_models, n_epochs)
    """
    if not models:
        raise AuditError("no finished models in this audit")
    return shared_epochs(read_many(audit, models, fields, image_ids), fields)


def shared_epochs(runs: Sequence[tuple[np.ndarray, dict]], fields: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Stack runs of `read_decisions` over their shared epochs: (epochs, {field: (n_images, n_models, n_epochs)}).

    The cubes are transposed views of (n_models, n_epochs, n_images) stacks: no strided copy.
    """
    n_epochs = min(len(epochs) for epochs, _ in runs)
    cubes = {f: np.stack([arrays[f][:n_epochs] for _, arrays in runs]).transpose(2, 0, 1) for f in fields}
    return runs[0][0][:n_epochs], cubes


def read_partial_decisions(audit: str | os.PathLike, name: str, image_ids: np.ndarray,
                           folder: str = "humans") -> dict[str, np.ndarray]:
    """The final-epoch decisions of a maker who saw part of the images (humans/<name>.parquet).

    Returns {"correct", "decided", "rt"}, each of shape (n_images,) in `image_ids` order: a missing
    decision is not decided (and not wrong); rt in seconds, NaN where unknown.
    """
    file = Path(audit) / folder / f"{name}.parquet"
    if not file.exists():
        raise AuditError(f"{name} has no decisions under {folder}/")
    table = pd.read_parquet(file)
    table = table[table["epoch"] == table["epoch"].max()]
    image_ids = np.asarray(image_ids)
    pos = np.searchsorted(image_ids, table["image_id"].to_numpy())
    if len(table) and (pos.max() >= len(image_ids) or not (image_ids[pos] == table["image_id"].to_numpy()).all()):
        raise AuditError(f"{file} names images the audit does not have")
    out = {"correct": np.zeros(len(image_ids), bool), "decided": np.zeros(len(image_ids), bool),
           "rt": np.full(len(image_ids), np.nan)}
    out["correct"][pos] = table["correct"].to_numpy(bool)
    out["decided"][pos] = True
    if "rt" in table.columns:
        out["rt"][pos] = table["rt"].to_numpy(float)
    return out
