"""The jobs that are not models: depth_split (baldock2021 §4) and learnability (sharma2018 §2).

They return no decisions, and the store keeps their records in aux/. The
measures themselves live in `audit.deep`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.running.jobs.base import JobContext, JobOutput, JobPlanning, ProgressFn, environment, register_job
from audit.running.jobs.variant import VariantJob
from audit.store import AuditError


@register_job("depth_split")
@dataclass
class DepthSplitJob:
    """baldock2021 §4's two depths for every validation image, so that its four types of difficulty apply.

    The validation split is cut into two seeded halves. For each half, the base
    recipe is trained on its own training images plus that half (with the
    given labels); in that network the half's images have a training-split
    depth and the other half a validation-split depth (baldock2021 trains 250
    networks on random 90:10 splits; two complementary splits give each image
    one depth of each kind). Writes depth/depth_split.parquet and
    aux/depth_split.json. Not a model: its networks saw half of the images.
    """

    spec: object  # the base VariantSpec
    depth_reference: int | None = 2000
    knn_backend: str = "auto"
    seed: int = 0
    name: str = "depth_split"
    kind: str = "depth_split"

    @classmethod
    def plan(cls, planning: JobPlanning) -> list[DepthSplitJob]:
        """With --depth-types, one job on the base recipe (the first variant when no variant is in the base group)."""
        config, specs = planning.config, planning.specs
        if not config.depth_types:
            return []
        base = [s for s in specs if s.group == "base"] or specs
        if not base:
            raise AuditError("--depth-types trains the base recipe on half of the validation split; "
                             "it needs trained variants (not --variants none)")
        return [cls(base[0], depth_reference=config.depth_reference, seed=config.seed)]

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "seed": self.seed, "depth_reference": self.depth_reference,
                "spec": self.spec.to_dict()}

    def estimate_seconds(self, ctx: JobContext) -> float:
        """Two trainings of the base recipe on its training images plus half of the validation split."""
        from audit.running.train import train_indices

        base = VariantJob(self.spec).estimate_seconds(ctx)  # includes one depth computation
        n_train = len(train_indices(len(ctx.dataset.train), self.spec))
        return 2 * base * (n_train + len(ctx.dataset.val) / 2) / max(n_train, 1)

    def run(self, ctx: JobContext, progress: ProgressFn | None = None) -> JobOutput:
        import dataclasses

        import torch

        from audit.deep.probes import DEFAULT_K, probe_depth, reference_subsample
        from audit.running.train import Normalizer, TensorData, train_indices, train_variant

        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        t0 = time.perf_counter()
        train, val = ctx.tensors()
        ds = ctx.dataset
        n_val = len(val)
        own = torch.from_numpy(train_indices(len(train), self.spec)).to(train.images.device)
        halves = [np.sort(h) for h in np.array_split(np.random.default_rng(self.seed).permutation(n_val), 2)]
        depth_val, depth_train = np.full(n_val, np.nan), np.full(n_val, np.nan)
        pred_val, pred_train = np.zeros(n_val, np.int32), np.zeros(n_val, np.int32)
        half_of = np.zeros(n_val, np.int8)
        facts = []
        for h, half in enumerate(halves):
            half_t = torch.from_numpy(half).to(val.images.device)
            combined = TensorData(torch.cat([train.images[own], val.images[half_t]]),
                                  torch.cat([train.labels[own], val.labels[half_t]]), train.transform)
            spec = dataclasses.replace(self.spec, name=f"{self.name}_{h + 1}", train_size=None, train_part="all")
            res = train_variant(spec, combined, val, ds.n_classes, device=ctx.torch_device(), flip=ctx.flip,
                                progress=progress)
            labels = combined.labels.cpu().numpy()
            ref = reference_subsample(np.arange(len(combined)), self.depth_reference, random_state=self.seed + h)
            ref_t = torch.from_numpy(ref).to(combined.images.device)
            d = probe_depth(res.model, combined.images[ref_t], labels[ref], val.images, Normalizer.fit(combined),
                            n_classes=ds.n_classes, k=min(DEFAULT_K, len(ref)), backend=self.knn_backend)
            inside = np.zeros(n_val, dtype=bool)
            inside[half] = True
            depth_train[inside], pred_train[inside] = d.depth[inside], d.predicted[inside]
            depth_val[~inside], pred_val[~inside] = d.depth[~inside], d.predicted[~inside]
            half_of[inside] = h + 1
            facts.append({"name": spec.name, "n_train": len(combined), "held_out_accuracy":
                          float((d.predicted[~inside] == ds.val.labels[~inside]).mean()), **d.describe()})
        frame = pd.DataFrame({"image_id": np.arange(n_val, dtype=np.int64), "half": half_of,
                              "depth_val": depth_val.astype(np.float32), "depth_train": depth_train.astype(np.float32),
                              "predicted_val": pred_val, "predicted_train": pred_train})
        record = {**self.describe(), "max_depth": facts[0]["max_depth"], "layers": facts[0]["layers"],
                  "networks": facts, "seconds": round(time.perf_counter() - t0, 3),
                  "device": str(ctx.torch_device()),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "environment": environment()}
        return JobOutput(record=record, decisions=None, extras={f"depth/{self.name}.parquet": frame})


@register_job("learnability")
@dataclass
class LearnabilityJob:
    """sharma2018 §2's teacher-student learnability, with its random-label and random-image controls.

    D1 and D2 come from the training split, D3 is the audit's validation split;
    writes learnability/learnability.parquet (one row per validation image) and
    aux/learnability.json. Not a model: it adds nothing to the DDD split.
    """

    config: object = None  # LearnabilityConfig; None = the default recipe
    seed: int = 0
    name: str = "learnability"
    kind: str = "learnability"

    @classmethod
    def plan(cls, planning: JobPlanning) -> list[LearnabilityJob]:
        """With --learnability, or by default for the quick preset (about 7 s on 2 idle cores,
        benchmarks/bench_depth.py)."""
        config, specs = planning.config, planning.specs
        wanted = bool(config.learnability) if config.learnability is not None else (
            config.variants == "quick" and bool(specs))
        if not wanted:
            return []
        if planning.dataset.train is None:
            raise AuditError(f"{config.dataset} has no training split; --learnability needs one")
        return [cls(seed=config.seed)]

    def _config(self):
        from audit.deep.learnability import LearnabilityConfig

        return self.config or LearnabilityConfig()

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "seed": self.seed, "config": self._config().to_dict()}

    def estimate_seconds(self, ctx: JobContext) -> float:
        """Calibrated on one core with the default MLP recipe on Fashion-MNIST (measured 9-13 s)."""
        cfg = self._config()
        n_val = len(ctx.dataset.val)
        seconds = len(cfg.conditions) * (cfg.n_per_split / 250 + n_val / 20000)
        if cfg.arch != "mlp":
            seconds *= 8
        return seconds / 20 if ctx.torch_device().type == "cuda" else seconds

    def run(self, ctx: JobContext, progress: ProgressFn | None = None) -> JobOutput:
        import torch

        from audit.deep.learnability import learnability

        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        train, val = ctx.tensors()
        ds = ctx.dataset
        t0 = time.perf_counter()
        cfg = self._config()
        results = learnability(train.images, ds.train.labels, val.images, ds.val.labels, n_classes=ds.n_classes,
                               config=cfg, device=ctx.torch_device(), random_state=self.seed, progress=progress)
        frame = pd.DataFrame({"image_id": np.arange(len(ds.val), dtype=np.int64)})
        for cond, r in results.items():
            frame[f"agree_{cond}"] = r.agree
        record = {
            **self.describe(),
            "conditions": {
                cond: {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(r).items() if k != "agree"}
                for cond, r in results.items()
            },
            "n_d3": len(ds.val),
            "seconds": round(time.perf_counter() - t0, 3),
            "device": str(ctx.torch_device()),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": environment(),
        }
        return JobOutput(record=record, decisions=None, extras={f"learnability/{self.name}.parquet": frame})
