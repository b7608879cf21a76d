"""Reading an audit back: `load(path)` gives an AuditResult of pandas frames and numpy arrays.

Works while the audit runs: only finished jobs are read. Decisions come through
`audit.store.decisions.read_many`, once per model and field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from audit.store.decisions import (
    DECISION_FIELDS,
    SCORE_FIELDS,
    _FinalCache,
    decision_path,
    read_many,
    read_partial_decisions,
)
from audit.store.directory import REPORT_DIR, SCORED_KIND, SUMMARY_FILE, AuditDir
from audit.store.files import AuditError, read_json
from audit.store.safety import name_problem, recorded_follow_symlinks, refused_root, root_is_sealed
from audit.store.state import describe_run_state, run_state


@dataclass
class AuditResult:
    """An audit read back from its directory.

    Attributes
    ----------
    path : Path
    manifest : dict
    images : DataFrame, one row per validation image, ordered by image_id
    models : DataFrame, one row per finished model of the audit (the makers of the split), in job order
    scored : DataFrame, one row per model scored on the finished audit (`ddd-audit score`, kind
        "scored"); their decisions are read like the models', but they take no part in the split
    """

    path: Path
    manifest: dict
    images: pd.DataFrame
    models: pd.DataFrame
    scored: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["name"]))
    #: The folder to read the image files from, named by the user (`--images-root`); None: the recorded
    #: root, read only when this user recorded it on this machine (see `image_path`)
    images_root: Path | None = None
    #: Read images behind symbolic links that leave the root (`--follow-symlinks`); None: as recorded
    follow_symlinks: bool | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    # ---- basic facts
    @property
    def model_names(self) -> list[str]:
        return list(self.models["name"]) if len(self.models) else []

    @property
    def scored_names(self) -> list[str]:
        """Models scored on the finished audit, outside the split (`scored`)."""
        return list(self.scored["name"]) if len(self.scored) else []

    @property
    def human_names(self) -> list[str]:
        """Human observers stored beside the models (imported audits); they take no part in the split."""
        return [h["name"] for h in self.manifest.get("humans") or []
                if isinstance(h, dict) and name_problem(h.get("name")) is None]  # each names a file

    def human_decisions(self) -> dict[str, np.ndarray]:
        """Every human's final decisions: {"correct", "decided", "rt"}, each (n_images, n_humans).

        A human decides only the images they saw: `decided` marks them, and `correct` is False elsewhere.
        """
        reads = [read_partial_decisions(self.path, h, self.image_ids) for h in self.human_names]
        if not reads:
            empty = np.empty((self.n_images, 0))
            return {"correct": empty.astype(bool), "decided": empty.astype(bool), "rt": empty}
        return {f: np.stack([r[f] for r in reads], axis=1) for f in ("correct", "decided", "rt")}

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    @property
    def labels(self) -> np.ndarray:
        return self.images["label"].to_numpy()

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["dataset"]["classes"])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_complete(self) -> bool:
        return self.state == "complete"

    @property
    def state(self) -> str:
        """One of RUN_STATES: complete, running, interrupted (rerun to resume) or failed."""
        return run_state(self.manifest)

    @property
    def state_text(self) -> str:
        """The run state in words, e.g. "interrupted, 3/8 jobs done; rerun the same command to resume"."""
        return describe_run_state(self.manifest)

    @property
    def image_ids(self) -> np.ndarray:
        return self.images["image_id"].to_numpy()

    # ---- decisions (read once per model and field through `read_many`, then kept)
    def decisions(self, model: str, split: str = "val") -> pd.DataFrame:
        """The long decision table of one model (columns: DECISION_COLUMNS)."""
        self._check_models([model])
        path = decision_path(self.path, model, split)
        if not path.exists():
            raise AuditError(f"{model} has no decisions on the {split} split")
        return pd.read_parquet(path)

    def epochs(self, model: str) -> np.ndarray:
        """The recorded epochs of one model, ascending (0 = before training)."""
        self._read([model], ("correct",))
        return self._cache[(model, "val", "epochs")]

    def decision_array(self, model: str, fld: str = "correct", split: str = "val") -> np.ndarray:
        """One field of one model's decisions, shape (n_epochs, n_images)."""
        if fld not in DECISION_FIELDS + SCORE_FIELDS:
            raise ValueError(f"field must be one of {DECISION_FIELDS + SCORE_FIELDS}, got {fld!r}")
        self._read([model], (fld,), split)
        return self._cache[(model, split, fld)]

    def _check_models(self, models: Sequence[str]) -> None:
        key = ("known models", len(self.models), len(self.scored))  # checked once per model read: kept
        if key not in self._cache:
            self._cache[key] = set(self.model_names) | set(self.scored_names)
        known = self._cache[key]
        for model in models:
            if model not in known:
                raise AuditError(f"unknown model {model!r}; this audit has: "
                                 f"{', '.join(self.model_names + self.scored_names)}")

    def _read(self, models: Sequence[str], fields: Sequence[str], split: str = "val") -> None:
        """Read the fields of `models` that are not kept yet, several models at a time."""
        self._check_models(models)
        todo = [m for m in models if any((m, split, f) not in self._cache for f in fields)]
        if not todo:
            return
        for m, (epochs, arrays) in zip(todo, read_many(self.path, todo, fields, self.image_ids, split), strict=True):
            self._cache[(m, split, "epochs")] = epochs
            for f in fields:
                self._cache[(m, split, f)] = arrays[f]

    def correct(self, models: Sequence[str] | None = None, epoch: int | None = None) -> np.ndarray:
        """Correctness at each model's final epoch (or a given epoch).

        Returns
        -------
        correct : ndarray of bool, shape (n_images, n_models)
        """
        return self._stack("correct", models, epoch)

    def true_prob(self, models: Sequence[str] | None = None, epoch: int | None = None) -> np.ndarray:
        """True-class probability at each model's final epoch, shape (n_images, n_models)."""
        return self._stack("true_prob", models, epoch)

    def predicted(self, models: Sequence[str] | None = None, epoch: int | None = None) -> np.ndarray:
        """Predicted labels at each model's final epoch, shape (n_images, n_models)."""
        return self._stack("predicted", models, epoch)

    def _stack(self, fld: str, models, epoch) -> np.ndarray:
        models = list(models) if models is not None else self.model_names
        self._read(models, (fld,))
        cols = []
        for m in models:  # read above: straight from the cache, not through a check per model
            arr = self._cache[(m, "val", fld)]
            if epoch is None:
                cols.append(arr[-1])
            else:
                ep = self._cache[(m, "val", "epochs")]
                where = np.flatnonzero(ep == epoch)
                if len(where) == 0:
                    raise AuditError(f"{m} has no decisions at epoch {epoch} (it has {ep.min()}..{ep.max()})")
                cols.append(arr[where[0]])
        if not cols:
            return np.empty((self.n_images, 0), dtype=bool if fld == "correct" else float)
        return np.stack(cols, axis=1)

    def keep_final_decisions(self) -> None:
        """Keep the final-epoch matrices of the fields already read for every model in the audit's cache/,
        where `audit.store.final_decisions` (the app) finds them without reading each decision file."""
        names = self.model_names
        fields = [f for f in DECISION_FIELDS if all((m, "val", f) in self._cache for m in names)]
        if not names or not fields:
            return
        cache = _FinalCache(self.path, names, self.image_ids)
        fields = cache.missing(fields)
        if not fields:
            return
        cache.write({f: self._stack(f, names, None) for f in fields},
                    {m: self._cache[(m, "val", "epochs")] for m in names})

    def correct_by_epoch(self, models: Sequence[str] | None = None, fld: str = "correct") -> np.ndarray:
        """One field over the epochs that all given models share.

        Returns
        -------
        values : ndarray of shape (n_images, n_models, n_epochs)
            n_epochs = the smallest number of recorded epochs among `models`
            (epoch 0 first); longer runs are cut to it.
        """
        models = list(models) if models is not None else self.model_names
        if not models:
            raise AuditError("no finished models in this audit")
        self._read(models, (fld,))
        arrays = [self.decision_array(m, fld) for m in models]
        n_epochs = min(a.shape[0] for a in arrays)
        return np.stack([a[:n_epochs].T for a in arrays], axis=1)

    # ---- deeper measures (per-job extra files; see AuditDir)
    def depth(self, model: str) -> pd.DataFrame | None:
        """Prediction depth of one model (columns image_id, split, depth, predicted, probe_*), or None."""
        p = self.path / "depth" / f"{model}.parquet"
        return pd.read_parquet(p) if p.exists() else None

    def probs(self, model: str) -> np.ndarray | None:
        """Final-epoch softmax on the validation split, shape (n_images, n_classes), or None."""
        p = self.path / "probs" / f"{model}.npy"
        return np.load(p).astype(np.float32) if p.exists() else None

    def representation(self, model: str, fields: Sequence[str] | None = None) -> dict | None:
        """The stored penultimate Gram matrix of one model (arrays of representation/<model>.npz; only
        `fields` of them when given), or None."""
        p = self.path / "representation" / f"{model}.npz"
        if not p.exists():
            return None
        with np.load(p) as arrays:
            return {k: arrays[k] for k in (fields or arrays.files)}

    def aux_record(self, name: str) -> dict | None:
        """The record of a finished job that is not a model (e.g. "learnability"), or None."""
        p = AuditDir(self.path).aux_path(name)
        return read_json(p) if p.exists() else None

    def aux_table(self, folder: str, name: str) -> pd.DataFrame | None:
        """A per-image table of a job that is not a model (e.g. learnability/learnability.parquet), or None."""
        p = self.path / folder / f"{name}.parquet"
        return pd.read_parquet(p) if p.exists() else None

    # ---- images
    @property
    def has_image_array(self) -> bool:
        """Whether the audit stores its images as an array (images.npy; array datasets)."""
        return (self.path / "images.npy").exists()

    @cached_property
    def _image_array(self) -> np.ndarray | None:
        p = self.path / "images.npy"
        return np.load(p, mmap_mode="r") if p.exists() else None

    def image(self, image_id: int):
        """The validation image as a PIL image (from the audit's own files or its recorded path)."""
        from PIL import Image

        arr = self._image_array
        if arr is not None:
            img = np.asarray(arr[int(image_id)])
            return Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img)
        reader = (self.manifest.get("dataset") or {}).get("reader")
        if reader:  # a table or shard source (hf:, parquet:, wds:): read by the image's key
            if not root_is_sealed(self.manifest):  # the files it names come from the manifest
                raise AuditError(f"image {image_id}: this audit folder was not created by you on this machine, so "
                                 "the table or shard source its manifest names is not read; audit or import the "
                                 "images here")
            from audit.data.table_sources import reader_image

            try:
                return reader_image(reader, str(self.images.iloc[int(image_id)]["source"]))
            except (OSError, ValueError) as exc:
                raise AuditError(f"image {image_id}: {exc}") from None
        path = self.image_path(image_id)
        try:
            return Image.open(path).convert("RGB")
        except OSError as exc:  # moved, deleted or unreadable since the audit
            raise AuditError(f"image {image_id}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None

    def image_path(self, image_id: int) -> Path:
        """The file of a validation image; AuditError unless it lies inside the folder it is read from.

        That folder is `images_root` when the user names one (`--images-root`). Otherwise it is the dataset
        root recorded in the manifest, read only when this user recorded it on this machine (its seal holds,
        see audit.store.safety) and when it is not `/`, a system folder or the home folder. An audit folder
        from anyone else could otherwise make a reader (export, report, the app) open any file.
        A symbolic link that leaves the folder is followed only with `follow_symlinks` (or as recorded).
        """
        row = self.images.iloc[int(image_id)]
        source = str(row["source"])
        dataset = self.manifest.get("dataset", {}) if isinstance(self.manifest.get("dataset"), dict) else {}
        recorded = dataset["root"] if "root" in dataset else dataset.get("origin")  # before "root": "origin"
        if self.images_root is not None:
            base = Path(self.images_root)
            if not base.is_dir():
                raise AuditError(f"--images-root {base} is not a folder")
            follow = bool(self.follow_symlinks)
        else:
            hint = "pass --images-root DIR, the folder that holds this audit's images"
            if not recorded or not Path(str(recorded)).is_dir():
                raise AuditError(f"image {image_id}: this audit records no folder of image files, so {source!r} is "
                                 f"not read ({hint}; an imported audit shows its images with "
                                 "`ddd-audit import ... --images ROOT`)")
            if not root_is_sealed(self.manifest):
                raise AuditError(f"image {image_id}: this audit folder was not created by you on this machine (its "
                                 f"dataset root {str(recorded)!r} carries no seal of yours), so its images are read "
                                 f"only from a folder you name: {hint}")
            why = refused_root(str(recorded))
            if why:
                raise AuditError(f"image {image_id}: the recorded dataset root is not read: {why}; {hint}")
            base = Path(str(recorded))
            follow = recorded_follow_symlinks(self.manifest) if self.follow_symlinks is None \
                else bool(self.follow_symlinks)
        rel = _relative_source(source, recorded, dataset.get("origin"),
                               row["image_key"] if "image_key" in row.index else None)
        if rel is None:
            raise AuditError(f"image {image_id}: {source!r} lies outside the audit's dataset folder; it is not read")
        root = base.resolve()
        path = root.joinpath(*rel)
        resolved = path.resolve()
        if not follow and resolved != root and not resolved.is_relative_to(root):
            raise AuditError(f"image {image_id}: {source!r} is a symbolic link that leaves the dataset folder "
                             f"{root}; it is not read (--follow-symlinks reads it)")
        return resolved

    # ---- report files
    def report_path(self, *parts: str) -> Path:
        """report/ or a file in it (REPORT_FILES, SUMMARY_FILE)."""
        return self.path.joinpath(REPORT_DIR, *parts)

    def summary(self) -> dict | None:
        """report/summary.json, or None before the first report."""
        p = self.report_path(SUMMARY_FILE)
        return read_json(p) if p.exists() else None


def load(path: str | os.PathLike, *, images_root: str | os.PathLike | None = None,
         follow_symlinks: bool | None = None) -> AuditResult:
    """Read an audit directory.

    `images_root` is the folder to read the image files from (`--images-root`; needed for an audit folder
    that was not created by this user on this machine), `follow_symlinks` whether images behind links
    that leave it are read (default: as the audit recorded). Values are returned as stored, verbatim.

    Works while the audit is still running: only finished jobs are listed in
    `models`; models scored after the audit (kind "scored") are in `scored`, not in
    `models`, so nothing that reads `models` puts them in the split. Raises AuditError
    when `path` is not an audit.
    """
    path = Path(path)
    if not path.exists():
        raise AuditError(f"audit directory {path} does not exist")
    store = AuditDir(path)
    manifest = store.read_manifest()
    images_path = path / "images.parquet"
    if not images_path.exists():
        raise AuditError(f"{path} has no images.parquet; the audit has not started writing yet")
    images = pd.read_parquet(images_path).sort_values("image_id").reset_index(drop=True)
    models_path = path / "models.parquet"
    finished = store.finished_jobs()
    if models_path.exists():
        models = pd.read_parquet(models_path)
        if "name" not in models.columns:  # written with no finished job by an older version
            models = pd.DataFrame(columns=["name"])
        models = models[models["name"].isin(finished)]
        listed = set(models["name"])
        extra = [n for n in finished if n not in listed]
    else:
        models, extra = pd.DataFrame(columns=["name"]), finished
    if extra:
        rows = [read_json(store.job_path(n)) for n in extra]
        rows = [{k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in r.items()} for r in rows]
        models = pd.concat([models, pd.DataFrame(rows)], ignore_index=True)
    order = [j["name"] for j in manifest.get("jobs", [])]
    rank = {n: i for i, n in enumerate(order)}
    models = models.assign(_rank=models["name"].map(lambda n: rank.get(n, len(rank))))
    models = models.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)
    scored = models["kind"].eq(SCORED_KIND).to_numpy() if "kind" in models.columns else np.zeros(len(models), bool)
    return AuditResult(path=path, manifest=manifest, images=images, models=models[~scored].reset_index(drop=True),
                       scored=models[scored].reset_index(drop=True),
                       images_root=Path(images_root) if images_root is not None else None,
                       follow_symlinks=follow_symlinks)


def _relative_source(source: str, recorded, origin, image_key) -> tuple[str, ...] | None:
    """The parts of an image's path inside its dataset folder, or None when the source lies outside it.

    Sources are absolute paths under the recorded root, paths relative to it, or (a folder given as a
    relative path) paths that start with the recorded origin; an imported audit's image key is relative.
    """
    text = os.path.normpath(source)
    parts: tuple[str, ...] | None = None
    if os.path.isabs(text):
        for folder in (recorded, origin):
            if folder and os.path.isabs(str(folder)):
                top = os.path.normpath(str(folder))
                if text == top or text.startswith(top.rstrip(os.sep) + os.sep):
                    parts = Path(os.path.relpath(text, top)).parts
                    break
        if parts is None and isinstance(image_key, str) and image_key and not os.path.isabs(image_key):
            parts = Path(os.path.normpath(image_key)).parts
    else:
        parts = Path(text).parts
        if origin and not os.path.isabs(str(origin)):
            top = Path(os.path.normpath(str(origin))).parts
            if parts[:len(top)] == top and len(parts) > len(top):
                parts = parts[len(top):]
    if not parts or any(p in ("..", "") for p in parts) or os.path.isabs(parts[0]):
        return None
    return tuple(parts)
