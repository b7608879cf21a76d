"""The audit directory: the decision store that every later analysis reads.

Writes are atomic (temporary name, then rename), so a killed run leaves nothing
half-written, and per-job files keep concurrent writers apart. `load(path)` reads
an audit back as an `AuditResult` of pandas frames and numpy arrays. No training,
no metrics, no printing here.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "ddd-audit/1"
DECISION_COLUMNS = ("epoch", "image_id", "predicted", "correct", "true_prob", "top_prob")
DECISION_FIELDS = ("predicted", "correct", "true_prob", "top_prob")
BASE_IMAGE_COLUMNS = ("image_id", "label", "class_name", "split", "source")
SPLITS = ("val", "train")
#: Per-job files beside the decisions (see AuditDir): probe depths, final softmax, learnability.
EXTRA_FOLDERS = ("depth", "probs", "learnability")


class AuditError(ValueError):
    """A problem with an audit directory that the user can fix."""


# --------------------------------------------------------------------------- atomic writes
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


def write_csv(path: Path, frame: pd.DataFrame, *, index: bool = False) -> None:
    """Write a frame as CSV atomically."""
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=index)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    tmp = _atomic_target(path, ".json")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a frame as Parquet atomically."""
    tmp = _atomic_target(path, ".parquet")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an array as .npy atomically."""
    tmp = _atomic_target(path, ".npy")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------- run state
#: What a run is doing: all jobs done; its process still works; it stopped early (killed, crashed, Ctrl-C);
#: or it ended with failed jobs.
RUN_STATES = ("complete", "running", "interrupted", "failed")
RESUME_HINT = "rerun the same command to resume"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a reused pid is not taken for the run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def current_process() -> dict:
    """The running process as the manifest records it: host, pid, start time."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def process_alive(process: dict) -> bool | None:
    """Whether a recorded process still runs; None when it ran on another host (cannot tell)."""
    if process.get("host") != socket.gethostname():
        return None
    pid = int(process.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded = process.get("process_start")
    return recorded is None or _process_start(pid) == recorded


def run_state(manifest: dict) -> str:
    """One of RUN_STATES for a manifest, judged from its jobs and its recorded process."""
    jobs = manifest.get("jobs", [])
    if jobs and all(j.get("status") == "done" for j in jobs):
        return "complete"
    if manifest.get("finished_at"):
        return "failed" if any(j.get("status") == "failed" for j in jobs) else "interrupted"
    process = manifest.get("process")
    if not process:
        return "running"  # written before runs recorded their process
    return "interrupted" if process_alive(process) is False else "running"


def describe_run_state(manifest: dict) -> str:
    """The run state in words, with what to do about it."""
    state = run_state(manifest)
    jobs = manifest.get("jobs", [])
    done = sum(j.get("status") == "done" for j in jobs)
    if state == "complete":
        return "complete"
    if state == "running":
        host = (manifest.get("process") or {}).get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return f"running{where}, {done}/{len(jobs)} jobs done"
    if state == "failed":
        failed = sum(j.get("status") == "failed" for j in jobs)
        return f"failed: {failed} of {len(jobs)} jobs failed, {done} done; fix the cause and {RESUME_HINT}"
    return f"interrupted, {done}/{len(jobs)} jobs done; {RESUME_HINT}"


# --------------------------------------------------------------------------- decisions
def decisions_frame(
    epochs: Sequence[int],
    image_ids: np.ndarray,
    predicted: np.ndarray,
    true_prob: np.ndarray,
    top_prob: np.ndarray,
    labels: np.ndarray,
) -> pd.DataFrame:
    """Build the long decision table from per-epoch arrays.

    Parameters
    ----------
    epochs : sequence of int, length n_epochs
    image_ids, labels : ndarray of shape (n_images,)
    predicted, true_prob, top_prob : ndarray of shape (n_epochs, n_images)
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
        }
    )


# --------------------------------------------------------------------------- writer side
class AuditDir:
    """Writer for one audit directory.

    Layout::

        manifest.json            config, dataset fingerprint, versions, jobs and their status
        images.parquet           one row per validation image (+ per-image scores after the report)
        images.npy               the validation images as uint8 (array datasets only)
        models.parquet           one row per finished model
        jobs/<model>.json        the per-job model record (written last; marks the job done)
        decisions/<model>.parquet        validation decisions at every recorded epoch
        decisions_train/<model>.parquet  training-split decisions (optional)
        depth/<model>.parquet    prediction depth per image (image_id, split, depth, predicted,
                                 probe_<layer> classes; see audit.deep.probes)
        probs/<model>.npy        final-epoch softmax on the validation split, float16,
                                 shape (n_images, n_classes) (for label issues)
        aux/<job>.json           record of a job that is not a model (learnability, depth_split)
        learnability/<job>.parquet  per-image teacher-student agreement (sharma2018)
        report/                  tables, summary.json and figures (rebuilt by `ddd-audit report`)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # paths
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def decision_path(self, model: str, split: str = "val") -> Path:
        folder = "decisions" if split == "val" else f"decisions_{split}"
        return self.path / folder / f"{model}.parquet"

    def job_path(self, model: str) -> Path:
        return self.path / "jobs" / f"{model}.json"

    # manifest
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict:
        if not self.exists():
            raise AuditError(f"{self.path} is not an audit directory (no manifest.json)")
        try:
            manifest = read_json(self.manifest_path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AuditError(f"{self.manifest_path} is not valid JSON ({exc}); the audit directory is damaged") \
                from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            manifest = manifest if isinstance(manifest, dict) else {}
            raise AuditError(f"{self.path} holds format {manifest.get('format')!r}, expected {FORMAT!r}")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        manifest = dict(manifest)
        manifest["format"] = FORMAT
        write_json(self.manifest_path, manifest)

    # jobs
    def job_done(self, model: str) -> bool:
        return self.job_path(model).exists() and self.decision_path(model).exists()

    def finished_jobs(self) -> list[str]:
        folder = self.path / "jobs"
        if not folder.exists():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if self.decision_path(p.stem).exists())

    def write_job(
        self,
        model: str,
        record: dict,
        decisions: pd.DataFrame,
        train_decisions: pd.DataFrame | None = None,
        extras: dict | None = None,
    ) -> None:
        """Store one finished job. The job record is written last, so it marks completion.

        `extras` maps paths relative to the audit (e.g. "depth/base.parquet",
        "probs/base.npy") to a DataFrame or an array; see `write_extras`.
        """
        missing = set(DECISION_COLUMNS) - set(decisions.columns)
        if missing:
            raise ValueError(f"decisions for {model} lack columns {sorted(missing)}")
        write_parquet(self.decision_path(model), decisions[list(DECISION_COLUMNS)])
        if train_decisions is not None:
            write_parquet(self.decision_path(model, "train"), train_decisions[list(DECISION_COLUMNS)])
        self.write_extras(extras or {})
        write_json(self.job_path(model), {"name": model, **record})

    def write_extras(self, extras: dict) -> None:
        """Write per-job extra files atomically: {relative path: DataFrame (.parquet) or ndarray (.npy)}."""
        for rel, obj in extras.items():
            rel_path = Path(rel)
            if rel_path.is_absolute() or ".." in rel_path.parts or rel_path.parts[0] not in EXTRA_FOLDERS:
                raise ValueError(f"extra file {rel!r} must lie in one of {EXTRA_FOLDERS}")
            if rel_path.suffix == ".parquet" and isinstance(obj, pd.DataFrame):
                write_parquet(self.path / rel_path, obj)
            elif rel_path.suffix == ".npy" and isinstance(obj, np.ndarray):
                write_npy(self.path / rel_path, obj)
            else:
                raise ValueError(f"extra file {rel!r}: expected a DataFrame for .parquet or an array for .npy, "
                                 f"got {type(obj).__name__}")

    # jobs that are not models (learnability, depth_split): no decisions, a record under aux/
    def aux_path(self, name: str) -> Path:
        return self.path / "aux" / f"{name}.json"

    def write_aux_job(self, name: str, record: dict, extras: dict | None = None) -> None:
        """Store a finished job that is not a model; its record (written last) marks completion."""
        self.write_extras(extras or {})
        write_json(self.aux_path(name), {"name": name, **record})

    def finished_aux_jobs(self) -> list[str]:
        folder = self.path / "aux"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    def write_failure(self, model: str, error: str) -> None:
        write_json(self.path / "failures" / f"{model}.json", {"name": model, "error": error})

    def clear_failure(self, model: str) -> None:
        (self.path / "failures" / f"{model}.json").unlink(missing_ok=True)

    def failures(self) -> dict[str, str]:
        folder = self.path / "failures"
        if not folder.exists():
            return {}
        return {p.stem: read_json(p)["error"] for p in sorted(folder.glob("*.json"))}

    def remove_job(self, model: str) -> None:
        for p in (self.job_path(model), self.aux_path(model), self.decision_path(model),
                  self.decision_path(model, "train")):
            p.unlink(missing_ok=True)
        for folder in EXTRA_FOLDERS:
            for suffix in (".parquet", ".npy"):
                (self.path / folder / f"{model}{suffix}").unlink(missing_ok=True)

    def remove_temporary_files(self) -> list[Path]:
        """Delete the temporary files (".NAME.XXXX.SUFFIX.tmp") that a killed writer left behind.

        Call it only while nothing writes to the audit: a live writer's temporary file would go too.
        """
        removed = []
        if self.path.is_dir():
            for p in self.path.rglob(".*.tmp"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
        return removed

    def write_models_table(self, order: Sequence[str] | None = None) -> pd.DataFrame:
        """Gather the per-job records into models.parquet (in `order` where given)."""
        names = self.finished_jobs()
        if order is not None:
            names = [n for n in order if n in set(names)] + [n for n in names if n not in set(order)]
        rows = []
        for name in names:
            rec = read_json(self.job_path(name))
            row = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in rec.items()}
            rows.append(row)
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"name": pd.Series(dtype=str)})
        write_parquet(self.path / "models.parquet", frame)
        return frame


# --------------------------------------------------------------------------- reader side
@dataclass
class AuditResult:
    """An audit read back from its directory.

    Attributes
    ----------
    path : Path
    manifest : dict
    images : DataFrame, one row per validation image, ordered by image_id
    models : DataFrame, one row per finished model, in job order
    """

    path: Path
    manifest: dict
    images: pd.DataFrame
    models: pd.DataFrame
    _cache: dict = field(default_factory=dict, repr=False)

    # ---- basic facts
    @property
    def model_names(self) -> list[str]:
        return list(self.models["name"]) if len(self.models) else []

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

    # ---- decisions
    def decisions(self, model: str, split: str = "val") -> pd.DataFrame:
        """The long decision table of one model (columns: DECISION_COLUMNS)."""
        if model not in self.model_names:
            raise AuditError(f"unknown model {model!r}; this audit has: {', '.join(self.model_names)}")
        path = AuditDir(self.path).decision_path(model, split)
        if not path.exists():
            raise AuditError(f"{model} has no decisions on the {split} split")
        return pd.read_parquet(path)

    def epochs(self, model: str) -> np.ndarray:
        """The recorded epochs of one model, ascending (0 = before training)."""
        return self._arrays(model)["epochs"]

    def decision_array(self, model: str, fld: str = "correct", split: str = "val") -> np.ndarray:
        """One field of one model's decisions, shape (n_epochs, n_images)."""
        if fld not in DECISION_FIELDS:
            raise ValueError(f"field must be one of {DECISION_FIELDS}, got {fld!r}")
        return self._arrays(model, split)[fld]

    def _arrays(self, model: str, split: str = "val") -> dict:
        key = (model, split)
        if key not in self._cache:
            frame = self.decisions(model, split)
            ep = frame["epoch"].to_numpy()
            ids = frame["image_id"].to_numpy()
            epochs = np.unique(ep)
            n = len(frame) // len(epochs)
            # the engine writes epoch-major, image-minor; sort only when a file is not in that order
            if len(frame) and not (np.all(ep[1:] >= ep[:-1]) and np.array_equal(ids[:n], np.arange(n))
                                   and np.all(ids.reshape(len(epochs), n) == ids[:n])):
                frame = frame.sort_values(["epoch", "image_id"], kind="stable")
            arrays = {"epochs": epochs}
            for f in DECISION_FIELDS:
                arrays[f] = np.array(frame[f].to_numpy()).reshape(len(epochs), n)
            del frame
            self._cache[key] = arrays
        return self._cache[key]

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
        cols = []
        for m in models:
            arr = self.decision_array(m, fld)
            if epoch is None:
                cols.append(arr[-1])
            else:
                ep = self.epochs(m)
                where = np.flatnonzero(ep == epoch)
                if len(where) == 0:
                    raise AuditError(f"{m} has no decisions at epoch {epoch} (it has {ep.min()}..{ep.max()})")
                cols.append(arr[where[0]])
        if not cols:
            return np.empty((self.n_images, 0), dtype=bool if fld == "correct" else float)
        return np.stack(cols, axis=1)

    def correct_by_epoch(self, models: Sequence[str] | None = None, fld: str = "correct") -> np.ndarray:
        """One field over the epochs that all given models share.

        Returns
        -------
        values : ndarray of shape (n_images, n_models, n_epochs)
            n_epochs = the smallest number of recorded epochs among `models`
            (epoch 0 first); longer runs are cut to it.
        """
        models = list(models) if models is not None else self.model_names
        arrays = [self.decision_array(m, fld) for m in models]
        if not arrays:
            raise AuditError("no finished models in this audit")
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

    def aux_record(self, name: str) -> dict | None:
        """The record of a finished job that is not a model (e.g. "learnability"), or None."""
        p = AuditDir(self.path).aux_path(name)
        return read_json(p) if p.exists() else None

    def aux_table(self, folder: str, name: str) -> pd.DataFrame | None:
        """A per-image table of a job that is not a model (e.g. learnability/learnability.parquet), or None."""
        p = self.path / folder / f"{name}.parquet"
        return pd.read_parquet(p) if p.exists() else None

    # ---- images
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
        return Image.open(self.image_path(image_id)).convert("RGB")

    def image_path(self, image_id: int) -> Path:
        """The file of a validation image, refused unless it lies under the dataset root in the manifest.

        A crafted images.parquet could otherwise make a reader (the app) open any file on the server.
        """
        source = str(self.images.iloc[int(image_id)]["source"])
        dataset = self.manifest.get("dataset", {})
        origin = dataset.get("root") or dataset.get("origin") or ""  # audits before "root" have the folder here
        if not origin or not Path(origin).is_dir():
            raise AuditError(f"image {image_id}: the manifest records no dataset folder, so {source!r} is not read")
        root = Path(origin).resolve()
        path = (root / source).resolve()  # a relative source lies under the root; an absolute one stays as it is
        if not path.is_relative_to(root):
            raise AuditError(f"image {image_id}: {source!r} lies outside the audit's dataset folder {root}; "
                             "it is not read")
        return path

    # ---- report files
    def report_path(self, *parts: str) -> Path:
        return self.path.joinpath("report", *parts)

    def summary(self) -> dict | None:
        p = self.report_path("summary.json")
        return read_json(p) if p.exists() else None


def load(path: str | os.PathLike) -> AuditResult:
    """Read an audit directory.

    Works while the audit is still running: only finished jobs are listed in
    `models`. Raises AuditError when `path` is not an audit.
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
        extra = [n for n in finished if n not in set(models["name"])]
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
    return AuditResult(path=path, manifest=manifest, images=images, models=models)
