"""The pretrained job: one pretrained model classifies every validation image once (epoch 0).

`pretrained_jobs` checks names, files and label spaces when the run is planned;
weights are loaded only in `PretrainedJob.run`, so a model whose weights fail to
load is recorded as failed and the others go on. Models come from `audit.models.pretrained`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from audit.data.base import Dataset
from audit.models.heads import HeadPlan, resolve_head
from audit.models.pretrained import ModelSpec, load_model, n_outputs, parse_spec, validate_spec
from audit.running.jobs.base import JobOutput, JobPlanning, ProgressFn, environment, register_job

DEFAULT_PROBE_TRAIN_SIZE = 5000


@register_job("pretrained")
@dataclass
class PretrainedJob:
    """Run one pretrained model over the validation split and record its decisions (epoch 0).

    head : the planned label space; a checkpoint whose classifier turns out to fit the dataset's
        classes is re-planned at run time ("native"), one without ImageNet outputs gets the probe
    """

    model_spec: ModelSpec
    head: HeadPlan
    probe: bool = True
    mapping: str | None = None
    probe_train_size: int | None = DEFAULT_PROBE_TRAIN_SIZE
    probe_C: float = 1.0
    batch_size: int | None = None
    hub_cache: str | None = None
    kind: str = "pretrained"

    @classmethod
    def plan(cls, planning: JobPlanning) -> list[PretrainedJob]:
        """One job per model of --models."""
        config = planning.config
        if not config.models:
            return []
        return pretrained_jobs(config.models, planning.dataset, probe=config.probe, mapping=config.label_map,
                               probe_train_size=config.probe_train_size)

    @property
    def name(self) -> str:
        return self.model_spec.name

    def describe(self) -> dict:
        d = {
            "name": self.name,
            "kind": self.kind,
            "group": "pretrained",
            "spec": self.model_spec.spec,
            "arch": self.model_spec.arch,
            "source": self.model_spec.source,
            "image_size": self.model_spec.image_size,
            **self.head.describe(),
        }
        if self.head.kind == "linear_probe":
            d["probe_train_size"] = self.probe_train_size
            d["probe_C"] = self.probe_C
        return d

    def estimate_seconds(self, ctx) -> float:
        """A rough CPU estimate (2 cores, lite0-sized model): ~15 ms per image at 224 px, scaled by the
        pixel count, plus decoding (~2 ms per JPEG, ~0.2 ms per small array image) and a probe fit; /30 on CUDA."""
        ds = ctx.dataset
        n = len(ds.val)
        fit = 0.0
        if self.head.kind == "linear_probe" and ds.train is not None:
            n += min(len(ds.train), self.probe_train_size or len(ds.train))
            fit = 4.0
        size = self.model_spec.image_size or 224
        seconds = n * 0.015 * (size / 224) ** 2 + n * (0.002 if ds.val.paths is not None else 0.0002)
        return (seconds / 30 if ctx.torch_device().type == "cuda" else seconds) + fit

    def _batch_size(self, device) -> int:
        if self.batch_size:
            return self.batch_size
        return 256 if device.type == "cuda" else 64

    def run(self, ctx, progress: ProgressFn | None = None) -> JobOutput:
        import torch

        from audit.data.decode_cache import Preprocessing, decode_cache_for
        from audit.models.heads import LinearProbe, decisions_from_probabilities, probe_indices
        from audit.running.predict import predict
        from audit.store import decisions_frame

        t0 = time.perf_counter()
        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        ds: Dataset = ctx.dataset
        device = ctx.torch_device()
        if progress:
            progress("load", 0, 1)
        loaded = load_model(self.model_spec, hub_cache=self.hub_cache)
        model = loaded.model.eval()
        head = self._head_for(model, ds)
        prep = Preprocessing.from_model(model, image_size=self.model_spec.image_size,
                                        resizer=getattr(ctx, "resizer", "pil"))
        cache = decode_cache_for(ctx)
        val = cache.get(ds.val, prep, progress=progress)
        decode_seconds = val.seconds
        bs = self._batch_size(device)
        kw = dict(mean=prep.mean, std=prep.std, device=device, batch_size=bs, progress=progress)
        probe_info = None
        if head.kind == "linear_probe":
            idx = probe_indices(len(ds.train), self.probe_train_size, random_state=ctx.seed)
            train = cache.get(ds.train, prep, index=idx, progress=progress)
            decode_seconds += train.seconds
            f_train = predict(model, train.images, output="features", **kw)
            f_val = predict(model, val.images, output="features", **kw)
            infer_seconds = f_train.seconds + f_val.seconds
            bs = min(f_train.batch_size, f_val.batch_size)
            if progress:
                progress("probe", 0, 1)
            tp = time.perf_counter()
            lp = LinearProbe(C=self.probe_C, random_state=ctx.seed).fit(f_train.values, ds.train.labels[idx],
                                                                        n_classes=ds.n_classes)
            probs = lp.predict_proba(f_val.values)
            probe_info = {"train_size": int(len(idx)), "C": self.probe_C, "n_features": int(f_train.values.shape[1]),
                          "train_accuracy": round(lp.train_accuracy_, 6), "n_iter": lp.n_iter_,
                          "fit_seconds": round(time.perf_counter() - tp, 3), "seed": ctx.seed}
        else:
            pred = predict(model, val.images, output="logits", **kw)
            infer_seconds, bs = pred.seconds, pred.batch_size
            probs = head.probabilities(pred.values)
        predicted, true_prob, top_prob = decisions_from_probabilities(probs, ds.val.labels)
        decisions = decisions_frame([0], np.arange(len(ds.val)), predicted[None], true_prob[None], top_prob[None],
                                    ds.val.labels)
        record = {
            **self.describe(),
            **head.describe(),
            "accuracy": float((predicted == ds.val.labels).mean()),
            "n_epochs": 0,
            **_model_facts(prep, loaded, model),
            "batch_size": bs,
            "decode_seconds": round(decode_seconds, 3),
            "inference_seconds": round(infer_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3),
            "device": str(device),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": environment(),
        }
        if probe_info is not None:
            record["probe"] = probe_info
        out = JobOutput(record=record, decisions=decisions)
        if getattr(ctx, "probs", False):  # the class probabilities, for label issues (as the variants store)
            out.extras[f"probs/{self.name}.npy"] = probs.astype(np.float16)
        if probe_info is not None and getattr(ctx, "rsa_images", 0):  # its features' Gram matrix, for RSA and CKA
            from audit.deep.features import capture, representation_images

            t_rep = time.perf_counter()
            ids = representation_images(len(ds.val), ctx.rsa_images, seed=ctx.seed)
            out.extras[f"representation/{self.name}.npz"] = capture(f_val.values[ids], ids).to_arrays()
            record["representation"] = {"n_images": len(ids), "n_features": int(f_val.values.shape[1]),
                                        "seconds": round(time.perf_counter() - t_rep, 3)}
        return out

    def _head_for(self, model, ds: Dataset) -> HeadPlan:
        n_out = int(getattr(model, "num_classes", 1000) or 0)
        if self.head.kind == "linear_probe" or n_out == 1000:
            return self.head
        if n_out == ds.n_classes and self.model_spec.source == "checkpoint":
            return HeadPlan("native")
        return resolve_head(ds.classes, probe=self.probe, imagenet_outputs=False, has_train=ds.train is not None,
                            dataset_name=ds.name)


def pretrained_jobs(specs: list[str], ds: Dataset, *, probe: bool = True, mapping: str | None = None,
                    probe_train_size: int | None = DEFAULT_PROBE_TRAIN_SIZE, hub_cache: str | None = None,
                    batch_size: int | None = None) -> list[PretrainedJob]:
    """One job per spec; names, files and label spaces are checked now (one-line ValueErrors).

    Weights are loaded in `run`, so a model whose weights fail to load is recorded as failed
    and the others go on.
    """
    jobs = []
    for spec in specs:
        ms = parse_spec(spec)
        validate_spec(ms)
        n_out = n_outputs(ms)
        head = resolve_head(ds.classes, mapping=mapping, probe=probe, force_probe=ms.force_probe,
                            imagenet_outputs=n_out in (None, 1000), has_train=ds.train is not None,
                            dataset_name=ds.name)
        jobs.append(PretrainedJob(ms, head, probe=probe, mapping=mapping, probe_train_size=probe_train_size,
                                  hub_cache=hub_cache, batch_size=batch_size))
    return jobs


def _model_facts(prep, loaded, model) -> dict:
    """The job record's facts about the model: its preprocessing, weights and size."""
    return {
        "input_size": list(prep.input_size),
        "crop_pct": prep.crop_pct,
        "crop_mode": prep.crop_mode,
        "interpolation": prep.interpolation,
        "resizer": prep.resizer,
        "mean": list(prep.mean),
        "std": list(prep.std),
        "preprocessing_key": prep.key,
        "weights_source": loaded.weights_source,
        "weights_hash": loaded.weights_hash,
        "weights_hash_of": loaded.weights_hash_of,
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
