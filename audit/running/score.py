"""Score models that were not in a finished audit on its images, without changing its split.

`plan_scoring(path, models=...)` checks the audit (finished, its pixels still where it found them, the
models new to it) and lists the jobs, the same pretrained or variant jobs, model specs and decode-once
cache as `ddd-audit run`; `run_scoring(plan)` runs them through an executor and stores each model's
decisions with kind "scored", one model at a time and atomically. The table of how they fare is the
report's (`audit.report.scored`). Nothing here prints; progress goes to a `RunListener`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.data.base import Dataset, Split
from audit.models.heads import LabelSpaceError, MappingFileError
from audit.models.variants import resolve_variants
from audit.running.engine import AuditConfig, RunListener, _flip_for, audited_dataset, check_writable_folder
from audit.running.jobs import JobContext, JobPlanning, VariantJob, pretrained_jobs
from audit.store import SCORED_KIND, AuditDir, AuditError, AuditResult, load, read_json, utc_now


@dataclass
class ScoringPlan:
    """The models to score on one audit.

    jobs : the jobs to run (pretrained or variant jobs)
    kept : models scored before with the same spec; they are kept (pass force to score them again)
    """

    path: Path
    jobs: list
    context: JobContext
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ScoringOutcome:
    done: list[str]
    kept: list[str]
    failed: dict[str, str]
    seconds: float


def plan_scoring(path: str | Path, *, models: list[str] | None = None, variants: str | None = None,
                 force: bool = False, device: str | None = None, cache_dir: str | None = None,
                 label_map: str | None = None) -> ScoringPlan:
    """Check the audit at `path` and list the jobs that score `models` (and the variants of `variants`) on it.

    Parameters
    ----------
    models : model specs as `ddd-audit run --models` takes them (timm names, ARCH=PATH, efficientnet_lite0@48)
    variants : a grid file (.yaml/.json) or preset of trained variants, for an audit whose dataset has a
        training split; their names must be new to the audit
    force : score again the models that were scored before (otherwise they are kept)
    device, cache_dir, label_map : as for `ddd-audit run`; default: the audit's own

    Raises AuditError (or ValueError from the model specs), one line each, when the audit is not finished,
    its image files moved, it was imported without images, a spec is unknown, or a model is one of the
    audit's own.
    """
    models = list(models or [])
    if not models and not variants:
        raise AuditError("nothing to score: give --models SPEC[,SPEC...] (see `ddd-audit list models`)")
    result = load(path)
    _check_finished(result)
    config = result.manifest.get("config") or {}
    imported = "import" in config
    if imported:
        cfg = AuditConfig(dataset=str(result.manifest["dataset"].get("name")), variants="none", probe=False)
    else:
        known = {f.name for f in dataclasses.fields(AuditConfig)}
        cfg = AuditConfig(**{k: v for k, v in config.items() if k in known})
    if cache_dir:
        check_writable_folder("--cache-dir", cache_dir)
    notes: list[str] = []
    cache = cache_dir or cfg.cache_dir
    if cache and not cache_dir:
        try:
            check_writable_folder("--cache-dir", cache)
        except AuditError:
            notes.append(f"the audit's decode cache {cache} cannot be written here; images are decoded in memory")
            cache = None
    _check_pixels(result, imported)
    ds = _imported_dataset(result) if imported else _audited_dataset(result, cfg)
    ctx = JobContext(dataset=ds, device=device or cfg.device, seed=cfg.seed, cache_dir=cache,
                     flip=_flip_for(cfg.dataset), depth="none", probs=False, rsa_images=0, resizer=cfg.resizer)
    try:
        jobs = pretrained_jobs(models, ds, probe=cfg.probe, mapping=label_map or cfg.label_map,
                               probe_train_size=cfg.probe_train_size) if models else []
    except LabelSpaceError as exc:
        if not imported or isinstance(exc, MappingFileError):
            raise
        raise AuditError(f"{ds.name}: the models' ImageNet outputs do not map onto its classes, and an imported "
                         "audit has no training images for a linear probe; give --label-map FILE, a mapping from "
                         "classes to ImageNet indices (CSV rows CLASS,INDEX)") from None
    if variants:
        if ds.train is None:
            raise AuditError(f"{ds.name} has no training split here, so no variant can be trained to score; "
                             "score pretrained models with --models")
        specs = resolve_variants(variants, seed=cfg.seed)
        planning = JobPlanning(config=dataclasses.replace(cfg, compile=False), context=ctx, specs=specs, notes=notes)
        jobs += VariantJob.plan(planning)
    return _new_jobs(result, jobs, ctx, notes, force)


def run_scoring(plan: ScoringPlan, *, executor=None, listener: RunListener | None = None) -> ScoringOutcome:
    """Run the plan's jobs and store each model's decisions as kind "scored"; the split stays as it is.

    A model's old record goes before its new decisions are written and the new record is written
    last, so a killed run leaves each model either scored in full or not at all; rerun to resume.
    A model that fails is reported and the others go on.
    """
    from audit.running.executors import LocalExecutor

    listener = listener or RunListener()
    executor = executor or LocalExecutor()
    store = AuditDir(plan.path)
    t0 = time.perf_counter()
    done: list[str] = []
    failed: dict[str, str] = {}
    listener.plan(plan.jobs, plan.jobs)

    def on_result(name: str, output, error: str | None, seconds: float):
        if error is None:
            record = {**output.record, "kind": SCORED_KIND, "scored_kind": output.record.get("kind"),
                      "scored_at": utc_now()}
            store.job_path(name).unlink(missing_ok=True)
            store.write_job(name, record, output.decisions)
            done.append(name)
        else:
            failed[name] = error
        listener.job_finished(name, "done" if error is None else "failed", seconds, error)

    executor.run(plan.jobs, plan.context, on_result=on_result, listener=listener)
    manifest = read_json(store.manifest_path)
    store.write_models_table(order=[j["name"] for j in manifest.get("jobs", [])])
    return ScoringOutcome(done=done, kept=plan.kept, failed=failed, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- checks
def _check_finished(result: AuditResult) -> None:
    jobs = result.manifest.get("jobs", [])
    unfinished = [j.get("name") for j in jobs if j.get("status") != "done"]
    if unfinished or not result.n_models:
        shown = ", ".join(map(str, unfinished[:8])) + (f" and {len(unfinished) - 8} more" if len(unfinished) > 8
                                                        else "")
        raise AuditError(f"{result.path} is not finished ({result.state_text}); unfinished jobs: {shown or 'all'}. "
                         "Finish the audit first (rerun the same `ddd-audit run` command), then score")


def _check_pixels(result: AuditResult, imported: bool) -> None:
    """Every image file is where the audit found it (array datasets keep their pixels in images.npy)."""
    if result.has_image_array:
        return
    dataset = result.manifest.get("dataset", {})
    if dataset.get("reader"):  # a table or shard source: reloaded and checked against the fingerprint
        return
    root = dataset["root"] if "root" in dataset else dataset.get("origin")
    if imported and not root:
        raise AuditError(f"{result.path} was imported without its images, so no model can be run on them; "
                         "re-import it with `ddd-audit import ... --images FOLDER`")
    base = Path(root) if root else None
    for image_id, source in zip(result.images["image_id"], result.images["source"].astype(str), strict=True):
        file = Path(source) if base is None else base / source  # an absolute source stays as it is
        if not file.is_file():
            raise AuditError(f"the audit's image files have moved: {file} (image {image_id}) is missing; "
                             f"put the dataset back where the audit read it{f' ({base})' if base else ''}")


def _audited_dataset(result: AuditResult, cfg: AuditConfig) -> Dataset:
    """The audit's dataset, loaded again from its source and checked against the audit's fingerprint."""
    ds = audited_dataset(cfg)
    recorded = result.manifest.get("dataset", {}).get("fingerprint")
    if recorded and ds.fingerprint() != recorded:
        raise AuditError(f"the dataset {cfg.dataset} no longer matches the audit (fingerprint {recorded}, now "
                         f"{ds.fingerprint()}); its images or labels changed since the audit, so a score on it "
                         "would not compare with the audit's split")
    if len(ds.val) != result.n_images or not np.array_equal(ds.val.labels, result.labels):
        raise AuditError(f"the dataset {cfg.dataset} gives {len(ds.val)} validation images, the audit has "
                         f"{result.n_images}; they must be the same images")
    return ds


def _imported_dataset(result: AuditResult) -> Dataset:
    """An imported audit's images as a dataset without a training split (the files, under --images)."""
    dataset = result.manifest["dataset"]
    if dataset.get("reader"):  # imported with --images hf:, parquet: or wds:
        from audit.data.table_sources import records_by_key

        records = records_by_key(dataset["reader"], list(result.images["source"].astype(str)))
        return Dataset(name=str(dataset.get("name")), classes=list(dataset["classes"]),
                       val=Split(result.labels, records=records), origin=str(dataset.get("origin", "")),
                       reader=dataset["reader"])
    root = Path(dataset["root"])
    paths = [str(root / s) for s in result.images["source"].astype(str)]
    return Dataset(name=str(dataset.get("name")), classes=list(dataset["classes"]),
                   val=Split(result.labels, paths=paths), root=str(root), origin=str(dataset.get("origin", "")))


def _new_jobs(result: AuditResult, jobs: list, ctx: JobContext, notes: list[str], force: bool) -> ScoringPlan:
    """Refuse the audit's own models and names given twice; keep models scored before with the same spec."""
    names = [j.name for j in jobs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AuditError(f"two specs give the model name {twice[0]!r}; score it once")
    own = set(result.model_names) | {j.get("name") for j in result.manifest.get("jobs", [])} | set(result.human_names)
    for job in jobs:
        if job.name in own:
            raise AuditError(f"{job.name} is one of the audit's own models: it makes the split, so it is not "
                             "scored beside it; choose a model the audit does not have")
    store = AuditDir(result.path)
    scored = set(result.scored_names)
    todo, kept = [], []
    for job in jobs:
        if job.name in scored and not force:
            before = read_json(store.job_path(job.name)).get("spec")
            if _same_spec(before, job.describe().get("spec")):
                kept.append(job.name)
                continue
            raise AuditError(f"{job.name} was scored before with another spec ({before}); pass --force to score "
                             "it again")
        todo.append(job)
    return ScoringPlan(path=result.path, jobs=todo, context=ctx, kept=kept, notes=notes)


def _same_spec(a, b) -> bool:
    def text(v):
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                return v
        return json.dumps(v, sort_keys=True, default=str)

    return text(a) == text(b)
