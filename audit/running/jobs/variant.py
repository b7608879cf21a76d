"""The variant job: train one variant of the meding2022 A.1 grid and record its decisions every epoch.

While the trained model is in memory the job also measures its prediction depth
and keeps its softmax outputs (`deep_outputs`) and its penultimate Gram matrix
(`representation_outputs`); models are not saved.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit.running.jobs.base import JobContext, JobOutput, JobPlanning, ProgressFn, environment, register_job
from audit.store import AuditError, decisions_frame

#: The side of the images trained variants see when a file dataset is decoded for them.
DEFAULT_IMAGE_SIZE = 32


@register_job("variant")
@dataclass
class VariantJob:
    """Train one variant (meding2022 A.1) and record its decisions every epoch."""

    spec: object  # VariantSpec
    kind: str = "variant"

    @classmethod
    def plan(cls, planning: JobPlanning) -> list[VariantJob]:
        """One job per variant. A file dataset is decoded for them first; on a device without
        non-deterministic kernels the non-deterministic variants are left out (meding2022 A.1's CUDA condition).
        """
        config, ctx, specs = planning.config, planning.context, planning.specs
        ds = ctx.dataset
        if specs and ds.train is not None and ds.val.images is None:
            from audit.data.decode import decode_splits

            size = config.image_size if config.image_size is not None else DEFAULT_IMAGE_SIZE
            ds = decode_splits(ds, size=size)
            ctx.dataset = ds
            planning.notes.append(f"trained variants see the images resized to {size}x{size}")
        if specs and ds.train is None:
            raise AuditError(f"{config.dataset} has no training split; trained variants need one. "
                             "Use --variants none to audit with pretrained models only")
        device = ctx.torch_device()
        if config.compile and device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise AuditError("--compile on the CPU needs a C++ compiler for torch.compile's kernels; install one "
                             "(apt-get install g++) or leave out --compile")
        from audit.running.train import has_nondeterministic_kernels

        jobs = [cls(s) for s in specs if s.deterministic or has_nondeterministic_kernels(device)]
        dropped = [s.name for s in specs if not s.deterministic and not has_nondeterministic_kernels(device)]
        if dropped:
            planning.notes.append(f"skipped {', '.join(dropped)}: {device.type} has no non-deterministic kernels "
                                  "(meding2022 A.1's CUDA condition)")
        return jobs

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "group": self.spec.group, "spec": self.spec.to_dict()}

    def estimate_seconds(self, ctx: JobContext) -> float:
        """A rough CPU estimate from the work done (images seen x epochs), calibrated on 2 cores."""
        from audit.running.train import train_indices

        ds = ctx.dataset
        n_train = len(train_indices(len(ds.train), self.spec)) if ds.train is not None else 0
        h, w = (ds.val.images.shape[1:3] if ds.val.images is not None else (32, 32))
        scale = (h * w) / (28 * 28)
        per_image = {"resnet_small": 1 / 2500, "vgg_small": 1 / 5000, "densenet_small": 1 / 600}.get(self.spec.arch, 1 / 1500)
        train_cost = self.spec.epochs * n_train * per_image * (1.3 if self.spec.split_batch else 1.0)
        eval_cost = (self.spec.epochs + 1) * len(ds.val) * per_image / 3
        if ctx.record_train:
            eval_cost += (self.spec.epochs + 1) * n_train * per_image / 3
        if ctx.wants_depth(self.spec.group):  # embeddings of the val and reference images, and the k-NN
            n_ref = min(n_train, ctx.depth_reference or n_train)
            eval_cost += (len(ds.val) + n_ref) * per_image + len(ds.val) * n_ref / 4e6
        seconds = (train_cost + eval_cost) * scale
        if ctx.compile:  # benchmarks/bench_scale.py on 2 CPU cores: ~35 s to compile, then ~1.17x faster epochs
            seconds = seconds / 1.17 + 35.0
        return seconds / 20 if ctx.torch_device().type == "cuda" else seconds

    def checkpoint_path(self, ctx: JobContext) -> str | None:
        return None if ctx.checkpoint_dir is None else str(Path(ctx.checkpoint_dir) / f"{self.name}.pt")

    def run(self, ctx: JobContext, progress: ProgressFn | None = None) -> JobOutput:
        import torch

        from audit.models.architectures import state_dict_hash
        from audit.running.train import train_variant

        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        train, val = ctx.tensors()
        res = train_variant(self.spec, train, val, ctx.dataset.n_classes, device=ctx.torch_device(),
                            record_train=ctx.record_train, flip=ctx.flip, progress=progress,
                            compile=ctx.compile, checkpoint=self.checkpoint_path(ctx))
        ds = ctx.dataset
        decisions = decisions_frame(res.epochs, np.arange(len(ds.val)), res.predicted, res.true_prob,
                                    res.top_prob, ds.val.labels, margin=res.margin, prob_sq_sum=res.prob_sq_sum)
        train_dec = None
        if res.train_predicted is not None:
            train_dec = decisions_frame(res.epochs, np.arange(len(ds.train)), res.train_predicted,
                                        res.train_true_prob, res.train_top_prob, ds.train.labels,
                                        margin=res.train_margin, prob_sq_sum=res.train_prob_sq_sum)
        extras, deep = deep_outputs(self.spec, ctx, res.model, train, val)
        rep_extras, rep_facts = representation_outputs(self.spec, ctx, res.model, train, val)
        extras.update(rep_extras)
        deep.update(rep_facts)
        record = {
            **self.describe(),
            **deep,
            "accuracy": res.val_accuracy[-1],
            "n_epochs": self.spec.epochs,
            "val_accuracy_curve": res.val_accuracy,
            "train_loss_curve": res.train_loss,
            "weights_source": f"trained here (init seed {self.spec.init_seed})",
            "weights_hash": state_dict_hash(res.model)[:16],
            "seconds": round(res.seconds, 3),
            "device": str(ctx.torch_device()),
            "compiled": bool(ctx.compile),
            "resumed_after_epoch": res.resumed_after_epoch,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": environment(),
        }
        return JobOutput(record=record, decisions=decisions, train_decisions=train_dec, extras=extras)


def representation_outputs(spec, ctx: JobContext, model, train, val) -> tuple[dict, dict]:
    """The final model's penultimate Gram matrix on the audit's representation images (for RSA and CKA).

    Returns the extra file ({"representation/<name>.npz": arrays}) and facts for the job record
    ({"representation": {n_images, n_features, seconds}}); both empty when `--rsa-images 0` or the
    architecture has no linear classifier.
    """
    from audit.deep.features import capture, penultimate_features, representation_images
    from audit.running.train import Normalizer

    if not ctx.rsa_images:
        return {}, {}
    t0 = time.perf_counter()
    ids = representation_images(len(val), ctx.rsa_images, seed=ctx.seed)
    norm = Normalizer.fit(train)  # the same statistics train_variant used
    index = ids if len(ids) < len(val) else slice(None)
    try:
        features = penultimate_features(model, val.images[index], norm)
    except ValueError:
        return {}, {}
    arrays = capture(features, ids).to_arrays()
    facts = {"n_images": len(ids), "n_features": int(features.shape[1]), "seconds": round(time.perf_counter() - t0, 3)}
    return {f"representation/{spec.name}.npz": arrays}, {"representation": facts}


def deep_outputs(spec, ctx: JobContext, model, train, val) -> tuple[dict, dict]:
    """Prediction depth and/or the final softmax of a trained variant, computed while its model is in memory.

    Returns the extra files ({path: frame or array}) and facts for the job record.
    """
    import torch

    from audit.deep.probes import DEFAULT_K, probe_depth, reference_subsample, softmax_outputs
    from audit.running.train import Normalizer, train_indices

    extras: dict = {}
    facts: dict = {}
    want_depth = ctx.wants_depth(spec.group)
    if not (want_depth or ctx.probs):
        return extras, facts
    norm = Normalizer.fit(train)  # the same statistics train_variant used
    n_classes = ctx.dataset.n_classes
    probs = None
    if want_depth:
        ref = reference_subsample(train_indices(len(train), spec), ctx.depth_reference, random_state=spec.init_seed)
        ref_t = torch.from_numpy(ref).to(train.images.device)
        ref_images, ref_labels = train.images[ref_t], ctx.dataset.train.labels[ref]
        k = min(DEFAULT_K, len(ref))  # tiny training splits get probes with fewer neighbours
        try:
            res = probe_depth(model, ref_images, ref_labels, val.images, norm, n_classes=n_classes, k=k,
                              backend=ctx.knn_backend)
            frames = [res.frame(np.arange(len(val)), "val")]
            facts["depth"] = res.describe()
            if ctx.depth_train:
                res_train = probe_depth(model, ref_images, ref_labels, ref_images, norm, n_classes=n_classes, k=k,
                                        backend=ctx.knn_backend)
                frames.append(res_train.frame(ref, "train"))
                facts["depth"]["train"] = res_train.describe()
        except ValueError as exc:  # e.g. an architecture without probe positions: keep the decisions
            facts["depth_error"] = str(exc)
        else:
            extras[f"depth/{spec.name}.parquet"] = pd.concat(frames, ignore_index=True)
            probs = res.probs
    if probs is None and ctx.probs:
        probs = softmax_outputs(model, val.images, norm)
    if ctx.probs:
        extras[f"probs/{spec.name}.npy"] = probs.astype(np.float16)
    return extras, facts
