"""The audit engine: plan the jobs of an audit, run the unfinished ones, and keep the manifest.

`plan_audit(config)` loads the dataset and asks every registered job kind
(`audit.running.jobs`) for its jobs; `run_audit(plan, ...)` executes them through an
executor and writes each result atomically, so a rerun resumes. Progress goes
to a `RunListener`; the CLI draws the bars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit.data.base import Dataset
from audit.data.sources import load_dataset, skipped_files_notes
from audit.models.variants import resolve_variants
from audit.running.config import AuditConfig
from audit.running.jobs import JobContext, JobPlanning, job_kind, job_kinds
from audit.store import (
    BASE_IMAGE_COLUMNS,
    AuditDir,
    AuditError,
    current_process,
    process_alive,
    refuse_foreign,
    run_state,
    utc_now,
)
from audit.store.safety import check_name


class RunListener:
    """Hears a run's progress from the engine and the executor; the default does nothing."""

    def plan(self, jobs: list, todo: list) -> None: ...
    def job_started(self, name: str, index: int, total: int) -> None: ...
    def job_progress(self, name: str, stage: str, done: int, total: int) -> None: ...
    def job_finished(self, name: str, status: str, seconds: float, error: str | None = None) -> None: ...


@dataclass
class AuditPlan:
    config: AuditConfig
    dataset: Dataset
    jobs: list
    notes: list[str]
    context: JobContext
    relabel: dict | None = None  # the relabel file applied to the validation labels (manifest.json keeps it)
    smoke: dict | None = None  # the caps of DDD_AUDIT_SMOKE=1, when it was set (manifest.json keeps them)
    threads: dict | None = None  # each job's threads and why (run_audit sets it; manifest.json keeps it)

    def describe_jobs(self) -> list[dict]:
        return [j.describe() for j in self.jobs]


def _flip_for(dataset: str) -> bool:
    return dataset.startswith(("cifar", "imagefolder", "imagenet", "hf:", "parquet:", "wds:"))


def _val_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds.val):
        return ds
    if n < 1:
        raise AuditError(f"--val-size must be at least 1, got {n}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds.val))[:n])
    return dataclasses.replace(ds, val=ds.val.subset(idx))


def check_writable_folder(option: str, path: str | Path) -> None:
    """Raise AuditError, naming the option, unless `path` is a folder, or can become one, that we may write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AuditError(f"{option} {path} is a file; give a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise AuditError(f"{option} {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AuditError(f"{option} {path} cannot be written: no write permission in {existing}")


def audited_dataset(config: AuditConfig) -> Dataset:
    """The dataset an audit of `config` classifies: its source, with the seeded --val-size subset and the
    validation labels of the --relabel file."""
    return _audited_dataset(config)[0]


def _audited_dataset(config: AuditConfig) -> tuple[Dataset, dict | None]:
    """`audited_dataset`, and the record of the relabel file applied (None without one)."""
    options = dict(config.dataset_options)
    if config.dataset.startswith("imagefolder:"):  # the one symlink policy (docs/security.md)
        options.setdefault("follow_symlinks", config.follow_symlinks)
    ds = load_dataset(config.dataset, data_root=config.data_root, download=config.download, **options)
    ds = _val_subset(ds, config.val_size, config.seed)
    if not config.relabel:
        return ds, None
    from audit.curation.relabel import read_relabel, relabel_dataset

    return relabel_dataset(ds, read_relabel(config.relabel))


#: DDD_AUDIT_SMOKE=1 shrinks every run to a smoke test of the commands (docs/development.md): at most these sizes,
#: 1 epoch, the first 3 trained variants and a short learnability recipe. Such an audit says nothing about its
#: data; its manifest keeps the caps under "smoke" and the run prints a note. 600 images still give a study of
#: the default 154 trivial and impossible pairs on Fashion-MNIST.
SMOKE_CAPS = {"val_size": 600, "train_size": 400, "probe_train_size": 100, "depth_reference": 200, "rsa_images": 200,
              "image_size": 32}
SMOKE_RECIPE = {"epochs": 1, "variants": 3, "learnability": {"n_per_split": 200, "max_epochs": 10}}


def _smoke(config: AuditConfig, specs: list) -> tuple[AuditConfig, list, dict | None]:
    """`config` and `specs` capped as SMOKE_CAPS and SMOKE_RECIPE say when DDD_AUDIT_SMOKE is set (not to 0)."""
    if os.environ.get("DDD_AUDIT_SMOKE", "0") in ("", "0"):
        return config, specs, None
    capped = {k: min(v, getattr(config, k) if getattr(config, k) is not None else v) for k, v in SMOKE_CAPS.items()}
    limit = SMOKE_CAPS["train_size"]
    specs = [dataclasses.replace(s, epochs=1, train_size=min(s.train_size or limit, limit),
                                 epoch_size=s.epoch_size and min(s.epoch_size, 5 * limit))
             for s in specs[:SMOKE_RECIPE["variants"]]]
    return dataclasses.replace(config, epochs=1, **capped), specs, {**SMOKE_CAPS, **SMOKE_RECIPE}


def _smoke_jobs(jobs: list) -> None:
    """Under DDD_AUDIT_SMOKE, the learnability job trains SMOKE_RECIPE's short recipe."""
    from audit.deep.learnability import LearnabilityConfig

    for job in jobs:
        if job.kind == "learnability":
            job.config = LearnabilityConfig(**SMOKE_RECIPE["learnability"])


def plan_audit(config: AuditConfig) -> AuditPlan:
    """Load the dataset and list the audit's jobs (nothing is trained yet).

    The settings are checked first (`AuditConfig.check`: the bounds, then each sub-config's rules between
    flags; InputError naming the flag)."""
    config.check()
    if config.cache_dir:
        check_writable_folder("--cache-dir", config.cache_dir)
    specs = resolve_variants(config.variants, seed=config.seed, epochs=config.epochs, train_size=config.train_size)
    config, specs, smoke = _smoke(config, specs)
    ds, relabelled = _audited_dataset(config)
    ctx = JobContext(dataset=ds, device=config.device, record_train=config.record_train, seed=config.seed,
                     cache_dir=config.cache_dir,
                     flip=_flip_for(config.dataset), depth=config.depth, depth_train=config.depth_train,
                     depth_reference=config.depth_reference, probs=config.probs,
                     compile=config.compile, resizer=config.resizer, rsa_images=config.rsa_images)
    ctx.wants_depth("base")  # checks the option before anything runs
    notes = skipped_files_notes(ds.skipped, ds.classes, ds.val.labels)
    if smoke:
        notes.append(f"DDD_AUDIT_SMOKE is set: a smoke test of at most {smoke['val_size']} images and "
                     f"{smoke['variants']} variants of 1 epoch, not an audit of the data")
    if relabelled:
        notes.append(f"relabelled {relabelled['n_changed']} of the {relabelled['n_images']} validation images "
                     f"named in {relabelled['file']}")
    planning = JobPlanning(config=config, context=ctx, specs=specs, notes=notes)
    jobs = [job for kind in job_kinds() for job in job_kind(kind).plan(planning)]
    ds = ctx.dataset  # the variants may have decoded a file dataset
    if smoke:
        _smoke_jobs(jobs)
    if not jobs:
        raise AuditError("nothing to run: give --variants PRESET and/or --models NAME[,NAME...]")
    names = [j.name for j in jobs]
    for name in names:  # each becomes a file name in the audit: checked before anything is written
        check_name(name, "job name")
    if len(set(names)) != len(names):
        raise AuditError(f"two jobs share a name: {sorted({n for n in names if names.count(n) > 1})}")
    return AuditPlan(config=config, dataset=ds, jobs=jobs, notes=notes, context=ctx, relabel=relabelled, smoke=smoke)


def _images_frame(ds: Dataset) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": np.arange(len(ds.val), dtype=np.int64),
            "label": ds.val.labels,
            "class_name": [ds.classes[i] for i in ds.val.labels],
            "split": "val",
            "source": ds.val.sources,
        }
    )[list(BASE_IMAGE_COLUMNS)]


def prepare_directory(plan: AuditPlan, out: str | Path, *, force: bool = False) -> AuditDir:
    """Create or reopen the audit directory; refuse one that holds a different audit."""
    store = AuditDir(out)
    check_writable_folder("--out", store.path)
    ds = plan.dataset
    fingerprint = ds.fingerprint()
    # a folder of someone else's files is never mixed into, --force or not; one that holds only what a run
    # killed before its manifest had begun is resumed (folder_state)
    if refuse_foreign(store.path) == "begun":
        store.remove_temporary_files()
    if store.exists():
        old = store.read_manifest()
        writer = old.get("process") or {}
        if run_state(old) == "running" and writer.get("pid") != os.getpid() and process_alive(writer):
            raise AuditError(f"{store.path} is being written by another run (pid {writer.get('pid')}); "
                             "wait for it to finish or stop it, then rerun")
        store.remove_temporary_files()  # left by a killed run
        old_fp = old.get("dataset", {}).get("fingerprint")
        if not force and old_fp != fingerprint:
            raise AuditError(
                f"{store.path} holds a different audit (dataset {old['dataset'].get('name')} "
                f"fingerprint {old_fp}, now {ds.name} {fingerprint}); choose another --out or pass --force"
            )
        old_specs = {j["name"]: j for j in old.get("jobs", [])}
        for job in plan.jobs:
            prev = old_specs.get(job.name)
            if prev is not None and _spec_key(prev) != _spec_key(job.describe()) and not force:
                raise AuditError(
                    f"{store.path} has a job {job.name!r} with another spec; choose another --out or pass --force"
                )
    if force:
        for name in store.finished_jobs() + store.finished_aux_jobs():
            store.remove_job(name)
    store.path.mkdir(parents=True, exist_ok=True)
    store.write_images(_images_frame(ds))
    if ds.val.images is not None and ds.val.paths is None and ds.val.records is None:
        store.write_image_array(ds.val.images)
    return store


def _job_threads(plan: AuditPlan, executor) -> dict | None:
    """Each local job's intra-op threads, set on the plan's context, and the record the manifest keeps:
    --threads or OMP_NUM_THREADS for every job; otherwise chosen again before each job from the cores that
    other processes leave free (`choose_threads`), and each job record keeps its count. A variant resumed
    from its checkpoint goes on with the threads it began with. Ray sizes its own."""
    import os

    from audit.running.executors import LocalExecutor, choose_threads

    if not isinstance(executor, LocalExecutor):
        return None
    per_job, why = choose_threads(plan.config.threads, workers=executor.workers)
    plan.context.threads = per_job
    plan.context.adapt_threads = (executor.workers == 1 and not plan.config.threads
                                  and not os.environ.get("OMP_NUM_THREADS", "").strip())
    if plan.context.adapt_threads:
        why += "; chosen again before each job"
    return {"per_job": per_job, "workers": executor.workers, "chosen_by": why}


def _spec_key(desc: dict) -> str:
    return json.dumps({k: v for k, v in desc.items() if k not in ("status", "seconds", "error")}, sort_keys=True,
                      default=str)


def _versions() -> dict:
    import platform

    import audit

    out = {"ddd_audit": audit.__version__, "python": platform.python_version()}
    for mod in ("torch", "torchvision", "timm", "numpy", "pandas"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def write_manifest(store: AuditDir, plan: AuditPlan, status: dict[str, str], errors: dict[str, str],
                   timings: dict[str, float] | None = None, *, process: dict | None = None,
                   finished: bool = False) -> None:
    """Record the plan, each job's status and the running process (see `audit.store.run_state`)."""
    jobs = []
    for job in plan.jobs:
        entry = {**job.describe(), "status": status.get(job.name, "pending")}
        if job.name in errors:
            entry["error"] = errors[job.name]
        jobs.append(entry)
    store.write_manifest(  # the dataset root comes from this user's own --dataset: sealed as made here
        {
            "config": plan.config.to_dict(),
            "dataset": plan.dataset.describe(),
            "versions": _versions(),
            "seed": plan.config.seed,
            "notes": plan.notes,
            **({"threads": plan.threads} if plan.threads else {}),
            **({"relabel": plan.relabel} if plan.relabel else {}),
            **({"smoke": plan.smoke} if plan.smoke else {}),
            "jobs": jobs,
            "stages": timings or {},
            "process": process or current_process(),
            "updated_at": utc_now(),
            **({"finished_at": utc_now()} if finished else {}),
        },
        seal=True,
    )


@dataclass
class RunOutcome:
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]
    seconds: float


def run_audit(plan: AuditPlan, out: str | Path, *, force: bool = False, executor=None,
              listener: RunListener | None = None) -> RunOutcome:
    """Run every unfinished job of `plan` into the audit directory `out`.

    Finished jobs are skipped (unless `force`); a job that fails is recorded in
    the manifest and the others go on.
    """
    from audit.running.executors import LocalExecutor

    listener = listener or RunListener()
    executor = executor or LocalExecutor()
    t0 = time.perf_counter()
    store = prepare_directory(plan, out, force=force)
    # a model scored on the finished audit (`ddd-audit score`) that this plan now audits is run as the audit's own
    finished = (set(store.finished_jobs()) - set(store.scored_jobs())) | set(store.finished_aux_jobs())
    status = {j.name: ("done" if j.name in finished else "pending") for j in plan.jobs}
    todo = [j for j in plan.jobs if status[j.name] != "done"]
    skipped = [j.name for j in plan.jobs if status[j.name] == "done"]
    errors: dict[str, str] = {}
    process = current_process()
    plan.threads = _job_threads(plan, executor)
    write_manifest(store, plan, status, errors, process=process)
    listener.plan(plan.jobs, todo)
    checkpoints = store.file("checkpoints")  # the variants' per-epoch state: a killed run loses no epoch
    if force:
        shutil.rmtree(checkpoints, ignore_errors=True)
    for name in skipped:  # a run killed between writing a job and removing its checkpoint
        (checkpoints / f"{name}.pt").unlink(missing_ok=True)
    plan.context.checkpoint_dir = str(checkpoints)

    def on_result(name: str, output, error: str | None, seconds: float):
        if error is None and output.decisions is None:  # a job that is not a model (learnability)
            store.write_aux_job(name, output.record, output.extras)
            store.clear_failure(name)
            status[name] = "done"
        elif error is None:
            store.write_job(name, output.record, output.decisions, output.train_decisions, output.extras)
            store.clear_failure(name)
            (checkpoints / f"{name}.pt").unlink(missing_ok=True)
            status[name] = "done"
        else:
            store.write_failure(name, error)
            status[name] = "failed"
            errors[name] = error
        write_manifest(store, plan, status, errors, process=process)
        listener.job_finished(name, status[name], seconds, error)

    executor.run(todo, plan.context, on_result=on_result, listener=listener)
    with contextlib.suppress(OSError):  # kept only while some variant has unfinished epochs
        checkpoints.rmdir()
    store.write_models_table(order=[j.name for j in plan.jobs])
    write_manifest(store, plan, status, errors, process=process, finished=True)
    return RunOutcome(done=[n for n, s in status.items() if s == "done" and n not in skipped], skipped=skipped,
                      failed=errors, seconds=time.perf_counter() - t0)
